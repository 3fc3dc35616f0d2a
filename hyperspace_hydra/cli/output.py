"""How the CLI prints: tables that never squeeze, compact cells, JSON that knows datetimes, CSV, progress bars.

Rich is imported where a table or a bar is printed, not with the CLI: a worker, which prints neither, and every other
command start ~40 ms sooner (rich.progress and rich.table import in 40 to 60 ms)."""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import yaml

from hyperspace_hydra.results import short_target

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


def console() -> Console:
    """A console that never squeezes tables into 80 columns when output goes to a pipe or file."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=10_000, color_system=None)


def progress_bar(label: str, described: bool = False) -> Progress:
    """A progress bar that stays on screen when done: ``label``, the bar, how many of how many, the task's description
    (with ``described``) and the time elapsed."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    description = (TextColumn("{task.description}"),) if described else ()
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), *description, TimeElapsedColumn(), transient=False)


def cell(value: Any, short_paths: bool = False) -> str:
    """A table cell: ``-`` for None, 4 significant digits for floats; with ``short_paths``, a class name for a target path."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if short_paths and isinstance(value, str):
        return short_target(value)  # a _target_ path: its class name says enough in a table
    return json.dumps(value) if not isinstance(value, str) else value


def print_table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], right_aligned: Sequence[str] = (), short_paths: bool = False, empty: str | None = None
) -> None:
    """Print ``rows`` under ``columns`` as a borderless table (``short_paths``: see :func:`cell`); with no row, then
    ``empty`` in parentheses, so that a bare header is never the whole answer."""
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for name in columns:
        table.add_column(name, justify="right" if name in right_aligned else "left")
    for row in rows:
        table.add_row(*(cell(value, short_paths) for value in row))
    console().print(table)
    if not rows and empty:
        print(f"({empty})")


def print_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print ``rows`` under ``columns`` as CSV: values in full, None empty, booleans, lists and mappings as JSON."""
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_csv_cell(value) for value in row] for row in rows)


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    return value if isinstance(value, (str, int, float)) and not isinstance(value, bool) else to_json(value)


def print_json_lines(rows: Sequence[dict[str, Any]]) -> None:
    """Print one JSON object per line."""
    for row in rows:
        print(to_json(row))


def to_json(value: Any, indent: int | None = None) -> str:
    """JSON text of ``value``; datetimes as ISO 8601 strings."""
    return json.dumps(value, default=_json_default, indent=indent)


READABLE_WIDTH = 100
"""Columns of the text :func:`readable_text` writes."""


class _ReadableDumper(yaml.SafeDumper):
    """YAML for people: text with line breaks as ``|`` blocks instead of one quoted line."""


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)


_ReadableDumper.add_representer(str, _represent_text)


def readable_text(document: Any) -> str:
    """``document`` as YAML at :data:`READABLE_WIDTH` columns, keys in their stored order (``runs show``)."""
    plain = json.loads(to_json(document))
    return yaml.dump(plain, Dumper=_ReadableDumper, sort_keys=False, width=READABLE_WIDTH, allow_unicode=True, default_flow_style=False)


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def describe_counts(counts: dict[str, int]) -> str:
    """``{"COMPLETED": 3, "FAILED": 1}`` as ``3 completed, 1 failed`` (``none`` when empty)."""
    return ", ".join(f"{count} {state.lower()}" for state, count in sorted(counts.items())) or "none"
