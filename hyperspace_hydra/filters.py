"""The filter and sort syntax of ``hyperspace runs ls`` and :func:`hyperspace_hydra.runs`.

A filter is one of::

    PATH=VALUE   PATH!=VALUE   PATH<VALUE   PATH>VALUE   PATH<=VALUE   PATH>=VALUE   PATH in [A, B]   PATH exists   PATH missing

PATH is a dotted path into the run's complete config (``classifier.C``) or one of the run
fields ``objective`` (also called ``result``, as in the runs table), ``status``, ``task``,
``sweep_id`` (also called ``sweep``), ``seed``, ``id``, ``result.<key>``, ``choices.<group>``. VALUE is read as YAML, as Hydra reads
override values: ``[50, 10]`` is a list, ``0.1`` and ``1e-3`` are numbers, ``true`` is a
boolean, ``mean`` and ``'1'`` are strings. How values compare, and that a null or absent
value is *missing*: :class:`~hyperspace_hydra.store.base.Condition`.

A sort is a path, with ``-`` in front for descending (``-result``: best objective first when
higher is better), or ``duration``.

Before a query runs, :func:`resolve_paths` checks its paths against the runs it asks about:
a short name as the runs table shows it (``lr`` for ``optimizer.lr``) becomes its full path,
and a path that no run has is an error naming the nearest ones, never an empty answer. So is a
comparison with a kind of value that no run holds at its path (``lr>zz`` where ``lr`` is a number).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import yaml

from hyperspace_hydra.config import flatten, identity_part
from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.results import keys_named, short_names, short_target
from hyperspace_hydra.settings import redact_credentials
from hyperspace_hydra.store.base import (
    DURATION,
    ORDER_OPERATORS,
    QUEUED,
    RUN_STATUSES,
    RUN_VALUE_PATHS,
    STUDY,
    Condition,
    Store,
    sort_order,
)

FORMS = "PATH=VALUE, PATH!=VALUE, PATH<VALUE, PATH>VALUE, PATH<=VALUE, PATH>=VALUE, 'PATH in [A, B]', 'PATH exists' or 'PATH missing'"
"""The accepted forms of a filter, as error messages list them."""

_PATH = r"(?P<path>[^\s=!<>]+)"
_WORDS = re.compile(rf"^\s*{_PATH}\s+(?P<op>in|exists|missing)(?:\s+(?P<value>.*?))?\s*$")
_COMPARISON = re.compile(rf"^\s*{_PATH}\s*(?P<op>!=|<=|>=|=|<|>)\s*(?P<value>.*?)\s*$")


class _ValueLoader(yaml.SafeLoader):
    """YAML as Hydra reads override values: ``1e-3`` is a float (plain PyYAML reads a string), ``yes``/``no``/``on``/``off`` are strings."""


_BOOL, _FLOAT = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:float"
_ValueLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ValueLoader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_ValueLoader.add_implicit_resolver(_FLOAT, re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"), list("-+.0123456789"))


def parse_condition(text: str) -> Condition:
    """Read a filter such as ``classifier.C<1`` or ``aggregation.agg_layers=[50,10]`` (forms: module docstring).

    Raises :class:`HyperspaceError` naming the problem and the accepted forms.
    """
    match = _WORDS.match(text) or _COMPARISON.match(text)
    if match is None:
        raise _invalid(text, "no operator found")
    path, op, raw = store_path(match["path"]), match["op"], match["value"]
    if op in ("exists", "missing"):
        if raw:
            raise _invalid(text, f"nothing may follow {op!r}")
        op, value = "exists", op == "exists"
    else:
        value = _value(text, raw or "")
    try:
        return Condition(path, op, value)
    except HyperspaceError as error:
        raise _invalid(text, str(error)) from None


def parse_sort(text: str) -> str:
    """Read a sort such as ``-result`` or ``classifier.C`` as :meth:`Store.list_runs` takes it."""
    sort = ("-" if text.startswith("-") else "") + store_path(text.removeprefix("-"))
    try:
        sort_order(sort)
    except HyperspaceError as error:
        raise HyperspaceError(f"invalid sort {text!r}: {error}") from None
    return sort


KNOWN_PATHS_SAMPLE = 1000
"""How many of the newest runs :func:`resolve_paths` reads the config of to learn which paths exist."""
_RUN_FIELD_NAMES = ("id", "status", "task", "sweep", "result", "seed", DURATION)
"""The run fields as a user names them (``result`` is the objective): always valid, never a config path."""


def resolve_paths(
    store: Store,
    where: Sequence[Condition],
    sort: str | None,
    *,
    task: str | None = None,
    sweep_id: int | None = None,
    status: str | None = None,
) -> tuple[list[Condition], str | None]:
    """``where`` and ``sort`` with each path as the store names it, checked against the runs they ask about.

    The paths that exist are learnt from the newest :data:`KNOWN_PATHS_SAMPLE` runs that match
    ``task``, ``sweep_id`` and ``status`` (one indexed query reading only their ``config``,
    ``result`` and ``choices``; its cost does not grow with the store). Each path of a filter or
    of the sort is then, in this order:

    - a run field (``id``, ``objective``, ``status``, ``task``, ``seed``, ``duration``, and ``study``, the app that
      recorded the run): kept; ``study=NAME`` that no run of the store has is an error listing the newest runs' studies;
    - a path some sampled run has (``optimizer.lr``, ``result.accuracy``, ``choices.model``): kept;
    - a name as the runs table shows config columns: the whole flattened key, or a suffix of
      whole parts of exactly one (``lr``; a ``_target_`` is named by its node, as in the table):
      replaced by its full path; more than one candidate is an error listing them;
    - a path that only older runs have: kept when the database finds one run with it (a query
      run only for a path the sample lacks, so at most once per such path);
    - else an error naming the nearest known paths. Under ``exists`` (and ``missing``) an
      unknown path is kept: asking whether runs have it is the point.

    A value of ``=``, ``!=`` or ``in`` that is the last part of a dotted string the sampled runs hold at its path (a
    ``_target_``, which the table shows by its class name: ``model=Ridge``) stands for that whole string; for several
    strings (``m.SGD``, ``torch.optim.SGD``) it is an error listing them.

    A filter by ``=``, ``<``, ``>``, ``<=``, ``>=`` or ``in`` whose value is of a kind (number, string, boolean,
    list) that no sampled run holds at its path is an error too, unless the database finds a run
    it matches: ``lr>zz`` would otherwise silently match nothing. (``!=`` matches every run then,
    which is its meaning.)

    When no run matches ``task``, ``sweep_id`` and ``status`` (an empty store, say) there is
    nothing to check against and the answer is empty anyway: paths are kept as given. But a
    ``sweep_id`` that names no sweep, or a ``task`` that no run of the store has, is an error (the
    newest runs' tasks listed): a mistyped name must not pass for an empty answer.
    """
    where = [_status_named(condition) for condition in where]
    sample = store.list_runs(KNOWN_PATHS_SAMPLE, task=task, sweep_id=sweep_id, status=status, fields=[*_VALUE_FIELDS, *_KEYED_FIELDS])
    if not sample:
        _require_selection(store, task, sweep_id)
        return list(where), sort

    def matches_in_store(condition: Condition) -> bool:
        return bool(store.list_runs(1, task=task, sweep_id=sweep_id, status=status, where=[condition], fields=[]))

    known = _KnownPaths(sample, matches_in_store)
    resolved = [known.checked(condition) for condition in where]
    for condition in resolved:
        _require_study(store, condition)
    if sort is None:
        return resolved, None
    path, descending = sort_order(sort)
    return resolved, ("-" if descending else "") + known.resolve(path, "sort", may_be_unknown=False)


def _require_selection(store: Store, task: str | None, sweep_id: int | None) -> None:
    """Raise :class:`HyperspaceError` for a sweep that does not exist or a task that no run has: an empty answer
    must mean that no run matches, not that a sweep id or a task name was mistyped."""
    if sweep_id is not None:
        store.get_sweep(sweep_id)  # raises for an unknown sweep
    if task is None or store.list_runs(1, task=task, fields=[]):
        return
    tasks = sorted({run["task"] for run in store.list_runs(KNOWN_PATHS_SAMPLE, fields=["task"]) if run["task"] is not None})
    known = f"the newest runs' tasks are {', '.join(tasks)}" if tasks else "no run has a task"
    raise HyperspaceError(f"no run of task {task!r} in store {redact_credentials(store.uri)}: {known}")


_STATUS_NAMES = (*RUN_STATUSES, QUEUED)
"""Every status a run can have: this tool's, and QUEUED, which Sacred gives a run it queued (in a store Sacred wrote)."""


def _status_named(condition: Condition) -> Condition:
    """A condition on ``status`` with its values as the store spells them (``completed`` is COMPLETED); a value that
    is no status is an error naming them, not a filter that silently matches nothing."""
    if condition.path != "status" or condition.op not in ("=", "!=", "in"):
        return condition
    values = condition.value if condition.op == "in" else [condition.value]
    named = [value.upper() if isinstance(value, str) else value for value in values]
    unknown = [given for given, value in zip(values, named) if value not in _STATUS_NAMES]
    if unknown:
        raise HyperspaceError(f"no run status is {unknown[0]!r}: a run's status is one of {', '.join(_STATUS_NAMES)}")
    return dataclasses.replace(condition, value=named if condition.op == "in" else named[0])


def _require_study(store: Store, condition: Condition) -> None:
    """Raise :class:`HyperspaceError` for ``study=NAME`` (or ``study in [...]``) when no run of the store was recorded
    by such an app: as with a task, a mistyped name must not pass for an empty answer."""
    if condition.path != STUDY or condition.op not in ("=", "in") or store.list_runs(1, where=[condition], fields=[]):
        return
    studies = sorted({(run["experiment"] or {}).get("name") or "?" for run in store.list_runs(KNOWN_PATHS_SAMPLE, fields=["experiment"])})
    known = f"the newest runs' studies are {', '.join(studies)}" if studies else "the store has no run"
    raise HyperspaceError(f"no run of study {condition.value!r} in store {redact_credentials(store.uri)}: {known}")


_VALUE_FIELDS = ("objective", "seed", "status", "task", "sweep_id")
"""Run fields holding one value, whose kinds :func:`resolve_paths` learns (``id`` is always a number)."""
_KEYED_FIELDS = ("config", "result", "choices")
"""Run fields holding a mapping, whose paths and kinds of values :func:`resolve_paths` learns."""
_COMPARED = ("=", *ORDER_OPERATORS, "in")
"""The operators that match nothing when no run holds a value of the compared kind."""


class _KnownPaths:
    """The paths of a sample of runs, by the names the runs table gives them, the kinds of value each holds, and how
    to ask the database about a path or value the sample lacks."""

    def __init__(self, runs: Iterable[Mapping[str, Any]], matches_in_store: Callable[[Condition], bool]) -> None:
        self._by_table_name: dict[str, str] = {}
        self._kinds: dict[str, set[str]] = {"id": {_kind(0)}}
        self._shortened: dict[str, dict[str, set[str]]] = {}
        """For each path, the dotted strings the runs hold there (a ``_target_``'s) by the last part the table shows."""
        for run in runs:
            config = identity_part(run.get("config") or {})
            for key, value in flatten(config).items():
                self._learn(self._by_table_name.setdefault(key, _config_path(config, key)), value)
            for field in _VALUE_FIELDS:
                self._learn(field, run.get(field))
            for field in _KEYED_FIELDS[1:]:
                for key, value in _field_values(field, run.get(field)).items():
                    self._learn(key, value)
        self._paths = set(self._kinds) - {*RUN_VALUE_PATHS, STUDY}
        self._matches_in_store = matches_in_store

    def _learn(self, path: str, value: Any) -> None:
        kinds = self._kinds.setdefault(path, set())
        if value is not None:
            kinds.add(_kind(value))
        shown = short_target(value)
        if shown != value:
            self._shortened.setdefault(path, {}).setdefault(shown, set()).add(value)

    def checked(self, condition: Condition) -> Condition:
        """``condition`` with its path resolved (:meth:`resolve`); an error when it compares with a kind of value that
        no run holds there (see :func:`resolve_paths`)."""
        path = self.resolve(condition.path, "filter", may_be_unknown=condition.op == "exists")
        resolved = self._as_held(dataclasses.replace(condition, path=path), condition.path)
        held = self._kinds.get(path)
        if condition.op not in _COMPARED or not held:
            return resolved
        compared = {_kind(item) for item in condition.value} if condition.op == "in" else {_kind(condition.value)}
        if compared & held or self._matches_in_store(resolved):
            return resolved
        raise HyperspaceError(
            f"the filter on {_table_name(condition.path)!r} compares with {' or '.join(sorted(compared))}, but the runs hold"
            f" {' or '.join(sorted(held))} there: it would match nothing"
        )

    def _as_held(self, condition: Condition, named: str) -> Condition:
        """``condition`` with each value that is the part of a dotted string the table shows (``Ridge`` for
        ``study.models.Ridge``) replaced by the whole string the runs hold at its path, so that a filter by what the
        table shows matches; a shown part that stands for several strings there is an error listing them."""
        shortened = self._shortened.get(condition.path)
        if not shortened or condition.op not in ("=", "!=", "in"):
            return condition
        values = condition.value if condition.op == "in" else [condition.value]
        held = set().union(*shortened.values())
        whole = []
        for value in values:
            candidates = sorted(shortened.get(value, ())) if isinstance(value, str) and value not in held else []
            if len(candidates) > 1:
                raise HyperspaceError(f"the filter on {named!r}: {value!r} is the last part of {', '.join(candidates)}; give the whole path")
            whole.append(candidates[0] if candidates else value)
        return dataclasses.replace(condition, value=whole if condition.op == "in" else whole[0])

    def resolve(self, path: str, role: str, may_be_unknown: bool) -> str:
        """The full path that ``path`` names (see :func:`resolve_paths`); raises :class:`HyperspaceError` if none or several."""
        if path in (*RUN_VALUE_PATHS, STUDY, DURATION) or path in self._paths:
            return path
        named = sorted({self._by_table_name[key] for key in keys_named(self._by_table_name, path)})
        named = named or sorted(set(keys_named(self._paths, path)))
        if len(named) == 1:
            return named[0]
        if named:
            raise HyperspaceError(f"the {role} path {path!r} is ambiguous: it names {', '.join(named)}; use a longer dotted suffix")
        if may_be_unknown or self._matches_in_store(Condition(path, "exists")):
            return path
        raise HyperspaceError(f"no run has the {role} path {path!r}: {self._nearest(path)}")

    def _nearest(self, path: str) -> str:
        short = short_names(list(self._by_table_name)).values()
        by_lowercase = {name.lower(): name for name in sorted({*self._paths, *self._by_table_name, *short, *_RUN_FIELD_NAMES})}
        close = difflib.get_close_matches(path.lower(), by_lowercase, n=5)  # a wrong case is a near miss too
        if close:
            return f"did you mean {', '.join(by_lowercase[name] for name in close)}?"
        return f"nothing is close; run fields are {', '.join(_RUN_FIELD_NAMES)}, and hyperspace runs show ID lists a run's config"


def _config_path(config: Mapping[str, Any], key: str) -> str:
    """The path in the stored config of a flattened key: a node shown by its ``_target_`` is the path of the ``_target_``."""
    node: Any = config
    for part in key.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return f"{key}._target_" if isinstance(node, Mapping) and "_target_" in node else key


def _field_values(field: str, value: Any) -> dict[str, Any]:
    """The values of a run's result (choices) by their ``result.<key>`` (``choices.<group>``) paths, when it is a mapping."""
    return {f"{field}.{key}": item for key, item in flatten(value).items()} if isinstance(value, Mapping) else {}


def _kind(value: Any) -> str:
    """The kind of a value as filters compare it: ``a number`` (ints and floats compare as one), ``a string``…"""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "a mapping"


_TABLE_NAMES = {"result": "objective", "sweep": "sweep_id"}
"""The runs table's names of run fields that the store names otherwise: its ``result`` column is the objective."""


def store_path(path: str) -> str:
    """A path as the runs table names it, as the store names it (:data:`_TABLE_NAMES`)."""
    return _TABLE_NAMES.get(path, path)


def _table_name(path: str) -> str:
    """A path as the runs table names it (the inverse of :func:`store_path`)."""
    return next((name for name, stored in _TABLE_NAMES.items() if stored == path), path)


def _value(text: str, raw: str) -> Any:
    try:
        value = yaml.load(raw, Loader=_ValueLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError:
        raise _invalid(text, f"cannot read {raw!r} as a YAML value (quote a string with spaces or brackets)") from None
    if value is None:
        raise _invalid(text, "no value (null counts as missing: use 'PATH missing' or 'PATH exists')")
    return value


def _invalid(text: str, problem: str) -> HyperspaceError:
    return HyperspaceError(f"invalid filter {text!r}: {problem}; expected {FORMS}")
