"""Run and job conditions as SQL: filters on config paths, result and other run fields, with the same type rules on SQLite and PostgreSQL
(a number matches only a number, a string only a string), and the orders of ``runs ls --sort``."""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from hyperspace_hydra.store.base import (
    DURATION,
    ID_RANGE,
    Condition,
    known_ids,
    run_conditions,
    run_path,
    sort_order,
)
from hyperspace_hydra.store.sql_schema import JOBS, RUNS


def id_is(column: sa.Column[Any], identifier: int) -> sa.ColumnElement[bool]:
    """``column = identifier``; false without asking for an id outside :data:`ID_RANGE`, which the database cannot bind."""
    return column == _bound(identifier) if identifier in ID_RANGE else sa.false()


def _id_in(column: sa.Column[Any], identifiers: Iterable[int]) -> sa.ColumnElement[bool]:
    """``column IN identifiers``, leaving out ids outside :data:`ID_RANGE` (see :func:`id_is`)."""
    return column.in_([_bound(identifier) for identifier in known_ids(identifiers)])


def job_filters(
    study: str | None, sweep_id: int | None, job_ids: Sequence[int] | None, states: Sequence[str] | None
) -> list[sa.ColumnElement[bool]]:
    filters = []
    if study is not None:
        filters.append(JOBS.c.study == study)
    if sweep_id is not None:
        filters.append(id_is(JOBS.c.sweep_id, sweep_id))
    if job_ids is not None:
        filters.append(_id_in(JOBS.c.id, job_ids))
    if states is not None:
        filters.append(JOBS.c.state.in_(list(states)))
    return filters


def run_filters(
    dialect: str, task: str | None, sweep_id: int | None, status: str | None, where: Sequence[Condition]
) -> list[sa.ColumnElement[bool]]:
    """The WHERE clauses of :meth:`SQLStore.list_runs`."""
    filters = [_condition(_run_value(dialect, condition.path), condition) for condition in run_conditions(task, status, where)]
    if sweep_id is not None:
        filters.append(id_is(RUNS.c.sweep_id, sweep_id))
    return filters


def run_order(dialect: str, sort: str) -> list[sa.ColumnElement[Any]]:
    """The ORDER BY of :meth:`SQLStore.list_runs` for ``sort``: numbers, then strings, then the rest; ties by id."""
    path, descending = sort_order(sort)
    value = _run_value(dialect, path)
    keys = [value.number(), value.string()]
    return [*((key.desc() if descending else key.asc()).nulls_last() for key in keys), RUNS.c.id]


def _condition(value: _RunValue, condition: Condition) -> sa.ColumnElement[bool]:
    op, expected = condition.op, condition.value
    if op == "exists":
        return value.present() if expected else sa.not_(value.present())
    if op == "=":
        return _equals(value, expected)
    if op == "!=":
        # `=` is NULL where the value is missing; != must match exactly the runs = does not
        return sa.not_(sa.func.coalesce(_equals(value, expected), sa.false(), type_=sa.Boolean))
    if op == "in":
        return sa.or_(*(_equals(value, item) for item in expected))
    return _ORDER[op](_typed(value, expected), _bound(expected))


_ORDER = {"<": operator.lt, ">": operator.gt, "<=": operator.le, ">=": operator.ge}
"""Each order operator of a :class:`Condition` as the comparison it makes in SQL."""


def _equals(value: _RunValue, expected: Any) -> sa.ColumnElement[bool]:
    if isinstance(expected, list):
        items = (_equals(value.item(index), item) for index, item in enumerate(expected))
        return sa.and_(value.length() == len(expected), *items)
    if isinstance(expected, bool):
        return value.boolean() == ("true" if expected else "false")
    return _typed(value, expected) == _bound(expected)


def _bound(expected: Any) -> Any:
    """``expected`` as a query parameter: an integer as a 64-bit one, not as the type of the column it is compared with
    (PostgreSQL's id column is 32-bit, and a larger number bound as such is an error, not a comparison)."""
    return sa.literal(expected, sa.BigInteger) if isinstance(expected, int) and not isinstance(expected, bool) else expected


def _typed(value: _RunValue, expected: Any) -> sa.ColumnElement[Any]:
    """The value as the kind of ``expected`` (a number or a string)."""
    return value.number() if isinstance(expected, (int, float)) else value.string()


class _RunValue:
    """A run's value at a path as SQL expressions, one per kind of value.

    Each expression is NULL unless the value is of its kind, and a comparison with NULL is
    never true: so a value of another kind, or a missing one, matches no condition but
    ``!=`` and ``exists``. This base class is a value that is missing.
    """

    def present(self) -> sa.ColumnElement[bool]:
        return sa.false()

    def number(self) -> sa.ColumnElement[Any]:
        return sa.cast(sa.null(), sa.Float)

    def string(self) -> sa.ColumnElement[Any]:
        return sa.cast(sa.null(), sa.String)

    def boolean(self) -> sa.ColumnElement[Any]:
        """``'true'`` or ``'false'``."""
        return sa.cast(sa.null(), sa.String)

    def length(self) -> sa.ColumnElement[Any]:
        """The number of items of a list."""
        return sa.cast(sa.null(), sa.Integer)

    def item(self, index: int) -> _RunValue:
        """The ``index``-th item of a list."""
        return _RunValue()


def _run_value(dialect: str, path: str) -> _RunValue:
    field, keys = run_path(path)
    if field == DURATION:
        return _DurationValue(dialect)
    column = RUNS.c[field]
    if not keys:
        return _ColumnValue(column, dialect)
    return _PostgresValue(column, keys) if dialect == "postgresql" else _SQLiteValue(column, keys)


class _ColumnValue(_RunValue):
    """A run field stored in its own column: a number or a string."""

    def __init__(self, column: sa.Column[Any], dialect: str) -> None:
        self.column = column
        self.dialect = dialect

    def present(self) -> sa.ColumnElement[bool]:
        return self.column.is_not(None)

    def number(self) -> sa.ColumnElement[Any]:
        return self.column if isinstance(self.column.type, (sa.Integer, sa.Float)) else super().number()

    def string(self) -> sa.ColumnElement[Any]:
        if not isinstance(self.column.type, sa.String):
            return super().string()
        return _by_code_point(self.column, self.dialect)


class _DurationValue(_RunValue):
    """Seconds from ``start_time`` to ``stop_time``; missing while either is NULL (a RUNNING run has no stop time)."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect

    def present(self) -> sa.ColumnElement[bool]:
        return sa.and_(RUNS.c.start_time.is_not(None), RUNS.c.stop_time.is_not(None))

    def number(self) -> sa.ColumnElement[Any]:
        if self.dialect == "postgresql":
            return sa.extract("epoch", RUNS.c.stop_time - RUNS.c.start_time)
        # SQLite keeps datetimes as ISO text; julianday reads it (fractional seconds included) as days
        return (sa.func.julianday(RUNS.c.stop_time) - sa.func.julianday(RUNS.c.start_time)) * 86400.0


class _SQLiteValue(_RunValue):
    """A value inside a JSON column, read with SQLite's JSON functions."""

    def __init__(self, column: sa.Column[Any], keys: tuple[str | int, ...]) -> None:
        self.column = column
        self.keys = keys
        self.path = "$" + "".join(f"[{key}]" if isinstance(key, int) else f'."{key}"' for key in keys)

    def _type(self) -> sa.ColumnElement[Any]:
        return sa.func.json_type(self.column, self.path)

    def _when(self, *types: str, then: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return sa.case((self._type().in_(types), then))

    def present(self) -> sa.ColumnElement[bool]:
        return sa.func.json_extract(self.column, self.path).is_not(None)  # NULL for JSON null too

    def number(self) -> sa.ColumnElement[Any]:
        return self._when("integer", "real", then=sa.func.json_extract(self.column, self.path))

    def string(self) -> sa.ColumnElement[Any]:
        return self._when("text", then=sa.func.json_extract(self.column, self.path))

    def boolean(self) -> sa.ColumnElement[Any]:
        return self._when("true", "false", then=self._type())

    def length(self) -> sa.ColumnElement[Any]:
        return self._when("array", then=sa.func.json_array_length(self.column, self.path))

    def item(self, index: int) -> _RunValue:
        return _SQLiteValue(self.column, (*self.keys, index))


class _PostgresValue(_RunValue):
    """A value inside a JSONB column, read with PostgreSQL's JSONB operators (``#>``, ``#>>``)."""

    def __init__(self, column: sa.Column[Any], keys: tuple[str | int, ...]) -> None:
        self.column = column
        self.keys = keys
        self.json = column[keys]

    def _when(self, json_type: str, then: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        # CASE, not AND: PostgreSQL may evaluate AND's operands in any order, and a cast of a string to float fails
        return sa.case((sa.func.jsonb_typeof(self.json) == json_type, then))

    def present(self) -> sa.ColumnElement[bool]:
        return self.json.as_string().is_not(None)  # #>> gives NULL for JSON null too

    def number(self) -> sa.ColumnElement[Any]:
        return self._when("number", self.json.as_float())

    def string(self) -> sa.ColumnElement[Any]:
        return _by_code_point(self._when("string", self.json.as_string()), "postgresql")

    def boolean(self) -> sa.ColumnElement[Any]:
        return self._when("boolean", self.json.as_string())

    def length(self) -> sa.ColumnElement[Any]:
        return self._when("array", sa.func.jsonb_array_length(self.json))

    def item(self, index: int) -> _RunValue:
        return _PostgresValue(self.column, (*self.keys, index))


def _by_code_point(text: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[Any]:
    """``text`` compared by code point, as SQLite and MongoDB compare strings (PostgreSQL's default collation may not)."""
    return text.collate("C") if dialect == "postgresql" else text
