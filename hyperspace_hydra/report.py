"""``hyperspace report``: one self-contained HTML file about a set of runs (plotly, opens offline).

Sections: the runs table (varying config columns, as ``runs ls``), the objective against
each varying parameter, a parallel-coordinates view of the numeric parameters and the
objective, the metric curves of the best runs, and the failures grouped by error.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hyperspace_hydra.results import run_rows, short_target
from hyperspace_hydra.store import COMPLETED, Store

_BEST_CURVES = 5
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2.5rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85rem; } td, th { padding: 0.25rem 0.6rem; border-bottom: 1px solid #eee; text-align: left; }
th { background: #f5f5f5; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 1rem; }
"""


def write_report(store: Store, runs: Sequence[Mapping[str, Any]], path: Path, title: str, maximize: bool) -> None:
    """Write the report about ``runs`` (as the store returns them) to ``path``."""
    columns, rows = run_rows(runs)
    sections = [
        f"<h1>{html.escape(title)}</h1><p>{len(runs)} run(s), {sum(run['status'] == COMPLETED for run in runs)} completed.</p>",
        "<h2>Runs</h2>" + _runs_table(columns, rows),
        "<h2>Objective against each varying parameter</h2>" + _parameter_plots(columns, rows),
        "<h2>Parallel coordinates</h2>" + _parallel_coordinates(columns, rows),
        f"<h2>Metric curves of the {_BEST_CURVES} best runs</h2>" + _best_curves(store, rows, maximize),
        "<h2>Failures by error</h2>" + _failures(runs),
    ]
    page = f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{_STYLE}</style>{_plotly_script()}</head><body>{''.join(sections)}</body></html>"
    path.write_text(page, encoding="utf-8")


def _plotly_script() -> str:
    from plotly.offline import get_plotlyjs

    return f"<script>{get_plotlyjs()}</script>"


def _figure_html(figure: Any) -> str:
    figure.update_layout(margin={"l": 50, "r": 20, "t": 40, "b": 40}, height=340, template="plotly_white")
    return figure.to_html(full_html=False, include_plotlyjs=False, config={"displayModeBar": False})


def _runs_table(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    header = "".join(f"<th>{html.escape(name)}</th>" for name in ["id", "status", "task", *columns, "result", "duration"])
    body = "".join(
        "<tr>" + "".join(_cell(value) for value in [row["id"], row["status"], row["task"], *row["config"].values(), row["result"], row["duration"]]) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{header}</tr>{body}</table>"


def _cell(value: Any) -> str:
    value = short_target(value)
    if isinstance(value, float):
        return f"<td class='num'>{value:.4g}</td>"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"<td class='num'>{value}</td>"
    return f"<td>{html.escape('-' if value is None else str(value))}</td>"


def _scored(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [row for row in rows if isinstance(row["result"], (int, float)) and not isinstance(row["result"], bool)]


def _parameter_plots(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    import plotly.graph_objects as go

    scored = _scored(rows)
    if not columns or not scored:
        return "<p>No varying parameter with a scored run.</p>"
    plots = []
    for name in columns:
        values = [_axis_value(row["config"].get(name)) for row in scored]
        figure = go.Figure(go.Scatter(x=values, y=[row["result"] for row in scored], mode="markers", text=[f"run {row['id']}" for row in scored]))
        figure.update_layout(title=name, xaxis_title=name, yaxis_title="objective")
        plots.append(_figure_html(figure))
    return f"<div class='grid'>{''.join(plots)}</div>"


def _axis_value(value: Any) -> Any:
    return short_target(value) if isinstance(value, (int, float, str)) or value is None else str(value)


def _parallel_coordinates(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    import plotly.graph_objects as go

    scored = _scored(rows)
    numeric = [name for name in columns if scored and all(isinstance(row["config"].get(name), (int, float)) for row in scored)]
    if not numeric:
        return "<p>No numeric varying parameter.</p>"
    dimensions = [{"label": name, "values": [row["config"][name] for row in scored]} for name in numeric]
    objective = [row["result"] for row in scored]
    figure = go.Figure(go.Parcoords(line={"color": objective, "colorscale": "Viridis", "showscale": True}, dimensions=[*dimensions, {"label": "objective", "values": objective}]))
    return _figure_html(figure)


def _best_curves(store: Store, rows: Sequence[Mapping[str, Any]], maximize: bool) -> str:
    import plotly.graph_objects as go

    best = sorted(_scored(rows), key=lambda row: row["result"], reverse=maximize)[:_BEST_CURVES]
    curves: dict[str, Any] = defaultdict(go.Figure)
    for row in best:
        for name, series in store.get_metrics(row["id"]).items():
            curves[name].add_trace(go.Scatter(x=series["steps"], y=series["values"], mode="lines", name=f"run {row['id']}"))
    if not curves:
        return "<p>The best runs logged no metric series.</p>"
    for name, figure in curves.items():
        figure.update_layout(title=name, xaxis_title="step")
    return f"<div class='grid'>{''.join(_figure_html(figure) for figure in curves.values())}</div>"


def _failures(runs: Sequence[Mapping[str, Any]]) -> str:
    groups: dict[str, list[int]] = defaultdict(list)
    for run in runs:
        if run["status"] != COMPLETED and run.get("fail_trace"):
            groups[_error_line(run["fail_trace"])].append(run["_id"])
    if not groups:
        return "<p>No failed run.</p>"
    body = "".join(
        f"<tr><td class='num'>{len(ids)}</td><td>{html.escape(error)}</td><td>{', '.join(map(str, ids))}</td></tr>"
        for error, ids in sorted(groups.items(), key=lambda item: -len(item[1]))
    )
    return f"<table><tr><th>runs</th><th>error</th><th>run ids</th></tr>{body}</table>"


def _error_line(trace: Sequence[str]) -> str:
    """The last non-empty line of a trace: the exception and its message."""
    lines = [line.strip() for line in "".join(trace).splitlines() if line.strip()]
    return lines[-1] if lines else "(no trace)"
