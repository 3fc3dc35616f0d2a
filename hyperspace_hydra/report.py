"""``hyperspace report``: one self-contained HTML file about a set of runs (plotly, opens offline).

Sections, in this order: the best run with the commands that reproduce it; the objective
against each varying parameter (a log axis for a parameter a search sampled on a log scale);
a parallel-coordinates view of the numeric parameters and the objective; the metric curves
of the best runs; the runs table (varying config columns as ``runs ls``, best first, sorted
by clicking a column, at most :data:`TABLE_ROWS` rows with a note); the failures grouped by
error.
"""

from __future__ import annotations

import html
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hyperspace_hydra.config import SETTINGS_KEY
from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.files import write_whole
from hyperspace_hydra.reproduce import reproduce_commands
from hyperspace_hydra.results import run_rows, run_table, short_target
from hyperspace_hydra.store import COMPLETED, Store
from hyperspace_hydra.store.base import last_error_line

TABLE_ROWS = 500
"""Rows of the runs table at most; the note under it says how many runs it leaves out."""
_BEST_CURVES = 5
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2.5rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85rem; } td, th { padding: 0.25rem 0.6rem; border-bottom: 1px solid #eee; text-align: left; }
th { background: #f5f5f5; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; } th[data-order="asc"]::after { content: " ▲"; } th[data-order="desc"]::after { content: " ▼"; }
pre { background: #f7f7f7; padding: 0.6rem; overflow-x: auto; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 1rem; }
"""
_SORTING = """
function hsCompare(a, b) {
  const x = parseFloat(a), y = parseFloat(b);
  return !isNaN(x) && !isNaN(y) ? x - y : a.localeCompare(b);
}
document.querySelectorAll("table.sortable").forEach(table => {
  table.querySelectorAll("th").forEach((th, column) => th.addEventListener("click", () => {
    const ascending = th.dataset.order !== "asc";
    table.querySelectorAll("th").forEach(other => delete other.dataset.order);
    th.dataset.order = ascending ? "asc" : "desc";
    const value = row => row.cells[column].dataset.value ?? row.cells[column].textContent;
    const rows = [...table.tBodies[0].rows].sort((a, b) => hsCompare(value(a), value(b)) * (ascending ? 1 : -1));
    table.tBodies[0].append(...rows);
  }));
});
"""


def write_report(store: Store, runs: Sequence[Mapping[str, Any]], path: Path, title: str, maximize: bool) -> None:
    """Write the report about ``runs`` (as the store returns them) to ``path``."""
    columns, unordered = run_rows(runs)
    rows = _best_first(unordered, maximize)
    log_columns = _log_scaled_columns(store, runs, columns)
    sections = [
        f"<h1>{html.escape(title)}</h1><p>{len(runs)} run(s): {_status_counts(runs)}.</p>",
        "<h2>Best run</h2>" + _best_run(runs, rows),
        "<h2>Objective against each varying parameter</h2>" + _parameter_plots(columns, rows, log_columns),
        "<h2>Parallel coordinates</h2>" + _parallel_coordinates(columns, rows, log_columns),
        f"<h2>Metric curves of the {_BEST_CURVES} best runs</h2>" + _best_curves(store, rows),
        "<h2>Runs</h2>" + _runs_table(columns, rows),
        "<h2>Failures by error</h2>" + _failures(runs),
    ]
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{_STYLE}</style>{_plotly_script()}</head>"
        f"<body>{''.join(sections)}<script>{_SORTING}</script></body></html>"
    )
    write_whole(path, page)


def ranking_direction(runs: Sequence[Mapping[str, Any]], given: str | None, study_direction: str | None) -> str:
    """Which objective is best for ``runs``: ``given`` (``--direction``), else the direction the runs were recorded
    with (their ``config.hyperspace.direction``; runs imported without settings say nothing), else ``study_direction`` (the study's, with ``--app``), else
    minimize, the setting's default.

    Runs scored by different objectives, or recorded with both directions, cannot be ranked together: a
    :class:`HyperspaceError` says so (and how to choose), instead of a best run that is not."""
    recorded = [settings for settings in map(_recorded_settings, runs) if settings]
    objectives = Counter(settings.get("objective") for settings in recorded)
    if len(objectives) > 1:
        raise HyperspaceError(
            f"the runs were scored by different objectives ({_counted(objectives)}): choose runs of one, e.g. --where hyperspace.objective={_first(objectives)}"
        )
    if given is not None:
        return given
    directions = Counter(settings["direction"] for settings in recorded if settings.get("direction") is not None)
    if len(directions) > 1:
        raise HyperspaceError(f"the runs were recorded with both directions ({_counted(directions)}): say which is best with --direction")
    return next(iter(directions), None) or study_direction or "minimize"


def _recorded_settings(run: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The settings a scored run was recorded with; None for a run without a score, or without settings (imported)."""
    settings = (run.get("config") or {}).get(SETTINGS_KEY) if run.get("objective") is not None else None
    return settings if isinstance(settings, Mapping) else None


def _counted(counts: Counter[Any]) -> str:
    return ", ".join(f"{value if value is not None else 'the returned number'}: {count} run(s)" for value, count in counts.most_common())


def _first(counts: Counter[Any]) -> Any:
    return next(value for value, _ in counts.most_common() if value is not None)


def _status_counts(runs: Sequence[Mapping[str, Any]]) -> str:
    """How many runs have each status, the most common first: ``5 completed, 3 pruned, 1 failed``."""
    counts = Counter(str(run["status"]).lower() for run in runs)
    return ", ".join(f"{count} {status}" for status, count in counts.most_common()) or "none"


def _best_first(rows: Sequence[Mapping[str, Any]], maximize: bool) -> list[Mapping[str, Any]]:
    """Scored rows best first, then the others in the store's order."""
    scored = sorted(_scored(rows), key=lambda row: row["result"], reverse=maximize)
    scored_ids = {row["id"] for row in scored}
    return [*scored, *(row for row in rows if row["id"] not in scored_ids)]


def _log_scaled_columns(store: Store, runs: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> set[str]:
    """The config columns of parameters that a search sweep of these runs sampled on a log scale."""
    from hyperspace_hydra.hpo.tuner import SearchSpec

    logged: set[str] = set()
    for sweep_id in {run["sweep_id"] for run in runs if run.get("sweep_id") is not None}:
        sweep = store.get_sweep(sweep_id)
        if sweep["kind"] == "search" and sweep.get("spec"):
            space = SearchSpec.from_json(sweep["spec"]).space
            logged |= {name for name, distribution in space.items() if getattr(distribution, "log", False)}
    return {column for column in columns for path in logged if path == column or path.endswith(f".{column}")}


def _best_run(runs: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]]) -> str:
    scored = _scored(rows)
    if not scored:
        return "<p>No run has an objective yet.</p>"
    best = scored[0]
    [run] = [run for run in runs if run["_id"] == best["id"]]
    overrides = " ".join(run.get("overrides") or []) or "(no overrides)"
    commands = "\n".join(reproduce_commands(run))
    return (
        f"<p>Run {best['id']}: objective <b>{best['result']:.6g}</b> with {html.escape(overrides)}.</p>"
        f"<p>Reproduce it:</p><pre>{html.escape(commands)}</pre>"
    )


def _plotly_script() -> str:
    from plotly.offline import get_plotlyjs

    return f"<script>{get_plotlyjs()}</script>"


def _figure_html(figure: Any) -> str:
    figure.update_layout(margin={"l": 50, "r": 20, "t": 40, "b": 40}, height=340, template="plotly_white")
    return figure.to_html(full_html=False, include_plotlyjs=False, config={"displayModeBar": False})


def _runs_table(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    header, cells = run_table(rows[:TABLE_ROWS], columns)
    head = "".join(f"<th>{html.escape(name)}</th>" for name in header)
    body = "".join("<tr>" + "".join(_cell(value) for value in row) + "</tr>" for row in cells)
    note = f"<p>The {TABLE_ROWS} best of {len(rows)} runs; narrow the report with --where, --task or --sweep to see others.</p>" if len(rows) > TABLE_ROWS else ""
    return f"<table class='sortable'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"


def _cell(value: Any) -> str:
    value = short_target(value)
    if isinstance(value, float):
        return f"<td class='num' data-value='{value!r}'>{value:.4g}</td>"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"<td class='num'>{value}</td>"
    return f"<td>{html.escape('-' if value is None else str(value))}</td>"


def _scored(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [row for row in rows if isinstance(row["result"], (int, float)) and not isinstance(row["result"], bool)]


def _parameter_plots(columns: Sequence[str], rows: Sequence[Mapping[str, Any]], log_columns: set[str]) -> str:
    import plotly.graph_objects as go

    scored = _scored(rows)
    if not columns or not scored:
        return "<p>No varying parameter with a scored run.</p>"
    plots = []
    for name in columns:
        values = [_plot_text(_axis_value(row["config"].get(name))) for row in scored]
        figure = go.Figure(go.Scatter(x=values, y=[row["result"] for row in scored], mode="markers", text=[f"run {row['id']}" for row in scored]))
        figure.update_layout(title=_plot_text(name), xaxis_title=_plot_text(name), yaxis_title="objective")
        if name in log_columns:
            figure.update_xaxes(type="log")
        plots.append(_figure_html(figure))
    return f"<div class='grid'>{''.join(plots)}</div>"


def _axis_value(value: Any) -> Any:
    return short_target(value) if isinstance(value, (int, float, str)) or value is None else str(value)


def _plot_text(value: Any) -> Any:
    """A string as plotly.js must get it to show it as text: plotly.js renders tags such as ``<b>`` and ``<a>`` in
    titles, labels and tick labels, and turns ``&lt;`` back into ``<``. Other values as they are."""
    return html.escape(value, quote=False) if isinstance(value, str) else value


def _parallel_coordinates(columns: Sequence[str], rows: Sequence[Mapping[str, Any]], log_columns: set[str]) -> str:
    import plotly.graph_objects as go

    scored = _scored(rows)
    numeric = [name for name in columns if scored and all(isinstance(row["config"].get(name), (int, float)) for row in scored)]
    if not numeric:
        return "<p>No numeric varying parameter.</p>"
    dimensions = [_dimension(name, [row["config"][name] for row in scored], name in log_columns) for name in numeric]
    objective = [row["result"] for row in scored]
    figure = go.Figure(go.Parcoords(line={"color": objective, "colorscale": "Viridis", "showscale": True}, dimensions=[*dimensions, {"label": "objective", "values": objective}]))
    return _figure_html(figure)


def _dimension(name: str, values: list[float], log: bool) -> dict[str, Any]:
    """A parallel-coordinates axis; a log-scaled parameter as log10 of its values (Parcoords has no log axis)."""
    if log and all(value > 0 for value in values):
        return {"label": _plot_text(f"log10 {name}"), "values": [math.log10(value) for value in values]}
    return {"label": _plot_text(name), "values": values}


def _best_curves(store: Store, rows: Sequence[Mapping[str, Any]]) -> str:
    import plotly.graph_objects as go

    best = _scored(rows)[:_BEST_CURVES]
    curves: dict[str, Any] = defaultdict(go.Figure)
    for row in best:
        for name, series in store.get_metrics(row["id"]).items():
            curves[name].add_trace(go.Scatter(x=series["steps"], y=series["values"], mode="lines", name=f"run {row['id']}"))
    if not curves:
        return "<p>The best runs logged no metric series.</p>"
    for name, figure in curves.items():
        figure.update_layout(title=_plot_text(name), xaxis_title="step")
    return f"<div class='grid'>{''.join(_figure_html(figure) for figure in curves.values())}</div>"


def _failures(runs: Sequence[Mapping[str, Any]]) -> str:
    groups: dict[str, list[int]] = defaultdict(list)
    for run in runs:
        if run["status"] != COMPLETED and run.get("fail_trace"):
            groups[last_error_line(run["fail_trace"]) or "(no trace)"].append(run["_id"])
    if not groups:
        return "<p>No failed run.</p>"
    body = "".join(
        f"<tr><td class='num'>{len(ids)}</td><td>{html.escape(error)}</td><td>{', '.join(map(str, ids))}</td></tr>"
        for error, ids in sorted(groups.items(), key=lambda item: -len(item[1]))
    )
    return f"<table><tr><th>runs</th><th>error</th><th>run ids</th></tr>{body}</table>"
