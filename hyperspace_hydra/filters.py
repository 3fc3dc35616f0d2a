"""The filter and sort syntax of ``hyperspace runs ls`` and :func:`hyperspace_hydra.runs`.

A filter is one of::

    PATH=VALUE   PATH!=VALUE   PATH<VALUE   PATH>VALUE   PATH in [A, B]   PATH exists   PATH missing

PATH is a dotted path into the run's complete config (``classifier.C``) or one of the run
fields ``objective`` (also called ``result``, as in the runs table), ``status``, ``task``,
``seed``, ``id``, ``result.<key>``, ``choices.<group>``. VALUE is read as YAML, as Hydra reads
override values: ``[50, 10]`` is a list, ``0.1`` and ``1e-3`` are numbers, ``true`` is a
boolean, ``mean`` and ``'1'`` are strings. How values compare, and that a null or absent
value is *missing*: :class:`~hyperspace_hydra.store.base.Condition`.

A sort is a path, with ``-`` in front for descending (``-result``: best objective first when
higher is better).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.store.base import Condition, sort_order

FORMS = "PATH=VALUE, PATH!=VALUE, PATH<VALUE, PATH>VALUE, 'PATH in [A, B]', 'PATH exists' or 'PATH missing'"
"""The accepted forms of a filter, as error messages list them."""

_PATH = r"(?P<path>[^\s=!<>]+)"
_WORDS = re.compile(rf"^\s*{_PATH}\s+(?P<op>in|exists|missing)(?:\s+(?P<value>.*?))?\s*$")
_COMPARISON = re.compile(rf"^\s*{_PATH}\s*(?P<op>!=|=|<|>)\s*(?P<value>.*?)\s*$")


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


def store_path(path: str) -> str:
    """A path as the runs table names it, as the store names it: the table's ``result`` column is the objective."""
    return "objective" if path == "result" else path


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
