"""`hyperspace report`'s page, written in-process from a store filled directly: what comes first, what is capped, which axes are logarithmic."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from optuna.distributions import FloatDistribution

from hyperspace_hydra import HyperspaceError
from hyperspace_hydra.hpo.tuner import SearchSpec
from hyperspace_hydra.report import TABLE_ROWS, ranking_direction, write_report
from hyperspace_hydra.store import COMPLETED, FAILED, Store, open_store
from hyperspace_hydra.store.base import PRUNED, MetricPoint

START = dt.datetime(2026, 11, 29, 12, 0, 0)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with open_store(f"sqlite:///{tmp_path}/store.db") as opened:
        yield opened


def _run(store: Store, lr: float, width: int, objective: float | None, sweep_id: int | None = None, status: str = COMPLETED) -> int:
    document = {"config": {"model": {"lr": lr, "width": width}}, "overrides": [f"model.lr={lr}"], "start_time": START, "sweep_id": sweep_id}
    run_id = store.start_run(document)
    trace = ["Traceback (most recent call last):\n", "ValueError: lr too large\n"] if status == FAILED else None
    store.finish_run(run_id, status, {"objective": objective, "stop_time": START + dt.timedelta(seconds=1), "fail_trace": trace})
    return run_id


def _report(store: Store, tmp_path: Path, maximize: bool = True) -> str:
    path = tmp_path / "report.html"
    write_report(store, store.list_runs(), path, "Runs", maximize=maximize)
    page = path.read_text()
    HTMLParser().feed(page)
    return page


def test_the_best_run_and_its_reproduce_command_come_first_then_plots_then_the_table(store: Store, tmp_path: Path) -> None:
    ids = [_run(store, lr, width, objective) for lr, width, objective in [(0.1, 8, 0.7), (0.01, 16, 0.9), (0.5, 8, 0.2)]]
    _run(store, 1.0, 8, None, status=FAILED)
    _run(store, 2.0, 8, None, status=PRUNED)
    page = _report(store, tmp_path)
    assert "<p>5 run(s): 3 completed, 1 failed, 1 pruned.</p>" in page, "each status counted, pruned trials too"
    sections = re.findall(r"<h2>([^<]+)</h2>", page)
    assert sections == ["Best run", "Objective against each varying parameter", "Parallel coordinates", "Metric curves of the 5 best runs", "Runs", "Failures by error"]
    assert f"<p>Run {ids[1]}: objective <b>0.9</b> with model.lr=0.01.</p>" in page and "python -m" in page.split("<h2>Objective")[0]
    table = page.split("<h2>Runs</h2>")[1].split("</table>")[0]
    assert "class='sortable'" in table and table.index(">0.9<") < table.index(">0.7<") < table.index(">0.2<"), "best first"
    assert "ValueError: lr too large" in page.split("<h2>Failures by error</h2>")[1]
    minimized = _report(store, tmp_path, maximize=False)
    assert f"<p>Run {ids[2]}: objective <b>0.2</b>" in minimized


def test_a_long_table_is_capped_with_a_note(store: Store, tmp_path: Path) -> None:
    for index in range(TABLE_ROWS + 20):
        _run(store, 0.001 * (index + 1), 8 + index % 2, float(index))
    table = _report(store, tmp_path).split("<h2>Runs</h2>")[1].split("<h2>")[0]
    assert table.count("<tr>") == TABLE_ROWS + 1, "header and the capped rows"
    assert f"The {TABLE_ROWS} best of {TABLE_ROWS + 20} runs" in table


def test_a_parameter_searched_on_a_log_scale_gets_a_log_axis(store: Store, tmp_path: Path) -> None:
    spec = SearchSpec(space={"model.lr": FloatDistribution(1e-4, 1.0, log=True)}, fixed=[], n_trials=3)
    sweep_id = store.enqueue("probe.run", [], {"kind": "search", "spec": spec.to_json(), "state": "COMPLETED"}, dedupe=False).sweep_id
    for lr, width in [(1e-4, 8), (1e-2, 16), (0.5, 8)]:
        _run(store, lr, width, lr * 10, sweep_id=sweep_id)
    page = _report(store, tmp_path)
    axes = {layout["xaxis"]["title"]["text"]: layout["xaxis"].get("type") for _, layout in _figures(page) if "title" in layout.get("xaxis", {})}
    assert axes["lr"] == "log" and axes["width"] is None, axes
    assert "log10 lr" in page, "the parallel coordinates show log10 of a log-scaled parameter"


def _figures(page: str) -> list[tuple[list, dict]]:
    """The data and layout of each plotly figure on the page, read from its ``Plotly.newPlot(id, data, layout, config)`` call."""
    decoder = json.JSONDecoder()
    figures = []
    for match in re.finditer(r"Plotly\.newPlot\(\s*", page):
        position = match.end()
        parts = []
        for _ in range(3):  # id, data, layout
            value, position = decoder.raw_decode(page, position)
            parts.append(value)
            position = re.compile(r"\s*,\s*").match(page, position).end()
        figures.append((parts[1], parts[2]))
    return figures


@pytest.mark.browser
def test_clicking_a_header_of_the_report_table_sorts_its_rows(store: Store, tmp_path: Path, page: Any) -> None:
    for lr, width, objective in [(0.1, 8, 0.7), (0.01, 16, 0.9), (0.5, 32, 0.2), (0.05, 4, 0.5)]:
        _run(store, lr, width, objective)
    _report(store, tmp_path)
    page.goto((tmp_path / "report.html").as_uri())
    assert _report_column(page, "result") == ["0.9", "0.7", "0.5", "0.2"], "best first"
    page.click("table.sortable th:text-is('width')")
    assert _report_column(page, "width") == ["4", "8", "16", "32"], "numerically, not as text"
    page.click("table.sortable th:text-is('width')")
    assert _report_column(page, "width") == ["32", "16", "8", "4"], "again: descending"
    page.click("table.sortable th:text-is('lr')")
    assert _report_column(page, "lr") == ["0.01", "0.05", "0.1", "0.5"] and _report_column(page, "result") == ["0.9", "0.5", "0.7", "0.2"], "whole rows move"


def _report_column(page: Any, name: str) -> list[str]:
    headers = [text.strip(" ▲▼") for text in page.locator("table.sortable th").all_inner_texts()]
    return page.locator(f"table.sortable tbody tr td:nth-child({headers.index(name) + 1})").all_inner_texts()


MARKUP = "<script>xss=1</script><b>bold</b>"
"""Markup to show as text; without a dot, which would make it a dotted config key."""


@pytest.mark.browser
def test_markup_in_parameter_names_values_and_metric_names_shows_as_text_in_the_report(store: Store, tmp_path: Path, page: Any) -> None:
    for lr, objective in [(0.1, 0.7), (0.01, 0.9)]:
        run_id = store.start_run({"config": {MARKUP: lr, "model": {"kind": f"{MARKUP} {lr}"}}, "start_time": START})
        store.add_metrics(run_id, [MetricPoint(MARKUP, 0, objective, START)])
        store.finish_run(run_id, COMPLETED, {"objective": objective, "stop_time": START + dt.timedelta(seconds=1)})
    _report(store, tmp_path)
    page.goto((tmp_path / "report.html").as_uri())
    page.wait_for_selector(".main-svg")
    assert page.evaluate("window.xss") is None, "a script from the store ran"
    assert page.locator("b:text-is('bold')").count() == 0 and page.locator("svg [style*='bold']").count() == 0, "markup from the store was rendered"
    titles = page.locator("svg .gtitle, svg .xtitle, svg .y-axis-title, svg .axis-title").all_text_contents()
    assert MARKUP in titles, titles
    assert any(MARKUP in text for text in page.locator("svg .xtick, svg .tick text").all_text_contents()), "a categorical axis' values"
    assert MARKUP in page.inner_text("table.sortable thead")


def test_a_report_is_written_whole_or_not_at_all(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _run(store, lr=0.1, width=8, objective=0.5)
    with pytest.raises(HyperspaceError, match=f"^cannot write {tmp_path}/missing/report.html: No such file or directory"):
        write_report(store, store.list_runs(), tmp_path / "missing" / "report.html", "Runs", maximize=False)
    path = tmp_path / "report.html"
    path.write_text("the report of yesterday")

    def interrupted(*_: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_report(store, store.list_runs(), path, "Runs", maximize=False)
    assert path.read_text() == "the report of yesterday" and not list(tmp_path.glob(".report.html.*"))
    monkeypatch.undo()
    write_report(store, store.list_runs(), path, "Runs", maximize=False)
    assert path.read_text().startswith("<!DOCTYPE html>") and path.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _scored(objective: float | None, settings: dict[str, Any] | None) -> dict[str, Any]:
    return {"objective": objective, "config": {"x": 1, **({"hyperspace": settings} if settings is not None else {})}}


def test_the_report_ranks_runs_in_the_direction_they_were_recorded_with() -> None:
    maximized = [_scored(0.9, {"objective": "acc", "direction": "maximize"}), _scored(None, {"objective": "acc", "direction": "minimize"})]
    assert ranking_direction(maximized, None, None) == "maximize", "a run without a score does not vote"
    assert ranking_direction(maximized, None, "minimize") == "maximize", "what the runs were recorded with wins over today's study"
    assert ranking_direction(maximized, "minimize", None) == "minimize", "--direction wins"
    imported = [_scored(0.5, None)]
    assert ranking_direction(imported, None, "maximize") == "maximize" and ranking_direction(imported, None, None) == "minimize"
    assert ranking_direction([*maximized, *imported], None, None) == "maximize", "runs imported without settings say nothing"


def test_runs_ranked_in_both_directions_or_by_different_objectives_are_an_error_not_a_best_run() -> None:
    both = [_scored(0.9, {"objective": "acc", "direction": "maximize"}), _scored(0.1, {"objective": "acc", "direction": "minimize"})]
    with pytest.raises(HyperspaceError, match=r"^the runs were recorded with both directions \(maximize: 1 run\(s\), minimize: 1 run\(s\)\): say which is best with --direction$"):
        ranking_direction(both, None, None)
    assert ranking_direction(both, "maximize", None) == "maximize"
    mixed = [_scored(0.9, {"objective": "acc"}), _scored(0.8, {"objective": "acc"}), _scored(0.1, {"objective": "loss"}), _scored(3.0, {"objective": None})]
    with pytest.raises(HyperspaceError, match=r"^the runs were scored by different objectives \(acc: 2 run\(s\), loss: 1 run\(s\), the returned number: 1 run\(s\)\): choose runs of one, e.g. --where hyperspace.objective=acc$"):
        ranking_direction(mixed, "maximize", None)



def test_report_without_app_or_direction_names_as_best_the_run_best_in_the_recorded_direction(store: Store, tmp_path: Path) -> None:
    from conftest import hyperspace

    for accuracy in (0.6, 0.9, 0.3):
        run_id = store.start_run({"config": {"lr": accuracy, "hyperspace": {"objective": "acc", "direction": "maximize"}}, "start_time": START})
        store.finish_run(run_id, COMPLETED, {"objective": accuracy, "result": {"acc": accuracy}, "stop_time": START})
    written = hyperspace(tmp_path, "report", "--store", store.uri, "-o", str(tmp_path / "r.html"))
    assert written.returncode == 0, written.stderr
    assert "objective <b>0.9</b>" in (tmp_path / "r.html").read_text(), "the highest accuracy, as the runs were maximizing it"
