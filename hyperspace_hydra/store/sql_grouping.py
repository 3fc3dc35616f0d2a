""":meth:`Store.group_runs` as one SQL query: runs grouped by their config without some paths.

SQLite groups by the text ``json_remove`` gives (so keys in another order make another group,
which the contract allows); PostgreSQL by the JSONB value ``#-`` gives. Each group carries its
runs as one JSON array of ``[id, sweep_id, status, objective, result, info.pruned, type, value, …]``,
one type and value per path asked for (the type is null where the config lacks the path),
so a group of thousands of runs is one row to read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from hyperspace_hydra.store.grouping import ConfigGroup, GroupedRun
from hyperspace_hydra.store.sql_schema import RUNS


def group_query(dialect: str, filters: Sequence[sa.ColumnElement[bool]], without: Sequence[str], values: Sequence[str]) -> sa.Select[str, str, str]:
    """The query whose rows :func:`config_group` reads: one per group of the runs that meet ``filters``."""
    if dialect == "postgresql":
        rest: sa.ColumnElement[Any] = RUNS.c.config
        for path in without:
            rest = _postgres_without(rest, path.split("."))
        entry = sa.func.jsonb_build_array(*_entry_columns("postgresql"), *_postgres_values(values))
        runs = sa.func.jsonb_agg(entry, type_=sa.Text)
        rest_text: sa.ColumnElement[str] = sa.cast(rest, sa.Text)  # JSONB's text is canonical: equal values, equal text
    else:
        rest = sa.func.json_remove(RUNS.c.config, *(_sqlite_path(path) for path in without), type_=sa.Text)
        entry = sa.func.json_array(*_entry_columns("sqlite"), *_sqlite_values(values))
        runs = sa.func.json_group_array(entry, type_=sa.Text)
        rest_text = rest
    columns = (rest_text, sa.cast(RUNS.c.choices, sa.Text), sa.cast(runs, sa.Text))
    # grouped by position: written twice, a bound path would be two parameters, and two expressions to PostgreSQL
    return sa.select(*columns).where(*filters).group_by(sa.literal_column("1"), sa.literal_column("2"))


def config_group(row: Sequence[Any], values: Sequence[str]) -> ConfigGroup:
    """A row of :func:`group_query` as a group."""
    rest, choices, runs = row
    entries = sorted(json.loads(runs), key=lambda entry: entry[0])
    return ConfigGroup(json.loads(rest or "null") or {}, json.loads(choices or "null"), [_grouped_run(entry, values) for entry in entries])


def _grouped_run(entry: list[Any], values: Sequence[str]) -> GroupedRun:
    run_id, sweep_id, status, objective, result, pruned, *typed = entry
    found = {path: typed[2 * index + 1] for index, path in enumerate(values) if typed[2 * index] is not None}
    return GroupedRun(run_id, sweep_id, status, _number(objective), result, pruned, found)


def _number(value: Any) -> float | None:
    """A stored objective: PostgreSQL's JSON writes a float that is not finite as a string (``"NaN"``)."""
    return float(value) if isinstance(value, str) else value


def _entry_columns(dialect: str) -> list[sa.ColumnElement[Any]]:
    if dialect == "postgresql":
        return [RUNS.c.id, RUNS.c.sweep_id, RUNS.c.status, RUNS.c.objective, RUNS.c.result, RUNS.c.info["pruned"]]
    pruned = sa.func.json(RUNS.c.info.op("->")('$."pruned"'))
    return [RUNS.c.id, RUNS.c.sweep_id, RUNS.c.status, RUNS.c.objective, sa.func.json(RUNS.c.result), pruned]


def _postgres_without(config: sa.ColumnElement[Any], keys: list[str]) -> sa.ColumnElement[Any]:
    """``config`` without the key at ``keys``, left as it is where the key's parent is no object (``#-`` fails on a
    scalar, and reads a key of a list as an index)."""
    from sqlalchemy.dialects import postgresql  # imported only where PostgreSQL is used (see sql_schema._JSONColumn)

    parent = sa.func.jsonb_typeof(config.op("#>")(sa.literal(keys[:-1], postgresql.ARRAY(sa.Text))))
    return sa.case((parent == "object", config.op("#-")(sa.literal(keys, postgresql.ARRAY(sa.Text)))), else_=config)


def _sqlite_path(path: str) -> str:
    return "$" + "".join(f'."{key}"' for key in path.split("."))


def _sqlite_values(values: Sequence[str]) -> list[sa.ColumnElement[Any]]:
    columns: list[sa.ColumnElement[Any]] = []
    for path in values:
        at = _sqlite_path(path)
        columns += [sa.func.json_type(RUNS.c.config, at), sa.func.json(RUNS.c.config.op("->")(at))]
    return columns


def _postgres_values(values: Sequence[str]) -> list[sa.ColumnElement[Any]]:
    columns: list[sa.ColumnElement[Any]] = []
    for path in values:
        value = RUNS.c.config[tuple(path.split("."))]
        columns += [sa.func.jsonb_typeof(value), value]
    return columns
