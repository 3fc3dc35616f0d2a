"""The benchmark scripts run at tiny sizes and report parseable figures (their values are not checked)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import fork_server
import pytest
from conftest import REPO, clean_env

BENCHMARKS = REPO / "benchmarks"
REQUIRED_FIELDS = {"benchmark", "ours", "baseline", "ratio", "unit", "timestamp", "commit", "cores"}

TINY_RUNS = {
    "per_job_overhead": (
        ["--jobs", "2"],
        {
            "per_job_overhead.queue_vs_basic_recorded",
            "per_job_overhead.queue_vs_basic_recorded_cpu",
            "per_job_overhead.queue_vs_basic_unrecorded",
            "per_job_overhead.basic_recorded_vs_unrecorded",
        },
    ),
    "enqueue_grid": (["--jobs", "2"], {"enqueue_grid.launcher_vs_compose"}),
    "worker_throughput_sqlite": (
        ["--jobs", "2", "--backends", "sqlite"],
        {"worker_throughput.sqlite.1_worker", "worker_throughput.sqlite.2_workers", "worker_throughput.sqlite.2_vs_1_workers"},
    ),
    "worker_throughput_postgresql": (
        ["--jobs", "2", "--backends", "postgresql", "--workers", "1"],
        {"worker_throughput.postgresql.1_worker"},
    ),
    "recording_cost": (["--runs", "2"], {"recording_cost.per_run", "recording_cost.added_vs_sacred_sql_observer"}),
    "worker_memory": (["--small", "1", "--large", "2"], {"worker_memory.rss_after_large_vs_small"}),
    "search_warm_start": (
        ["--seeds", "1", "--previous", "5", "--budget", "5", "--past", "10", "--repeats", "1", "--history-read", "20"],
        {
            *(f"search_trials_to_target.{name}" for name in ("sphere", "branin", "hartmann6", "optimizer_lr", "noisy_sphere")),
            "search_trials_to_target.median_ratio",
            "search_trials_to_target.control_other_momentum",
            "search_ask_latency_10_past_runs",
            "search_history_first_read_20_past_runs",
        },
    ),
    "search_pruning": (
        ["--trials", "2", "--steps", "2", "--sleep", "0", "--past", "3", "--curve-steps", "3", "--workers", "1"],
        {
            *(f"search_pruning.{figure}.{pruner}" for figure in ("steps", "wall_clock", "best_loss") for pruner in ("median", "successive_halving")),
            "search_pruning.ask_ms.median_3_trials",
            "search_pruning.ask_ms.successive_halving_3_trials",
        },
    ),
    "runs_ls_large": (["--runs", "20", "--repeats", "1"], {"runs_ls_first_page.sqlite.20_runs"}),
    "store_copy_postgresql": (
        ["--runs", "20"],
        {"store_copy.sqlite_to_postgresql.20_runs", "store_copy.peak_rss.20_vs_2_runs", "store_copy.postgresql_copy_vs_executemany.20_runs"},
    ),
    "ui_first_page": (["--runs", "20", "--repeats", "1"], {"ui_first_page.sqlite.20_runs"}),
}
SCRIPTS = ["per_job_overhead", "enqueue_grid", "worker_throughput", "recording_cost", "worker_memory", "search_warm_start", "search_pruning", "runs_ls_large", "store_copy", "ui_first_page", "chaos_soak"]
"""Every script; chaos_soak runs only by hand (a soak, not a test): its --help is checked here."""


def run_benchmark(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python benchmarks/<script>.py args`` from the repository, as a user would run it."""
    return fork_server.run([sys.executable, str(BENCHMARKS / f"{script}.py"), *args], cwd=REPO, env=clean_env(), timeout=timeout)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("case", [pytest.param(case, marks=pytest.mark.postgres) if "postgresql" in case else case for case in TINY_RUNS])
def test_each_benchmark_prints_and_appends_its_figures_as_json_lines(case: str, tmp_path: Path) -> None:
    args, expected = TINY_RUNS[case]
    results = tmp_path / "results.jsonl"
    finished = run_benchmark(case.removesuffix("_sqlite").removesuffix("_postgresql"), *args, "--output", str(results))
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert f"# cores: {os.cpu_count()}" in finished.stdout.splitlines()
    printed = json_lines(finished.stdout)
    assert {figure["benchmark"] for figure in printed} == expected
    for figure in printed:
        assert REQUIRED_FIELDS <= set(figure), figure
        assert all(isinstance(figure[name], (int, float)) for name in ("ours", "baseline", "ratio")), figure
        assert isinstance(figure["unit"], str) and figure["unit"]
    assert json_lines(results.read_text()) == printed, "the results file gets the same lines"


def test_a_second_run_appends_to_the_results_file(tmp_path: Path) -> None:
    """A results file that holds an earlier run's lines (written here: one benchmark run less) keeps them."""
    results = tmp_path / "results.jsonl"
    earlier = [{"benchmark": "recording_cost.per_run", "ours": 1.0, "baseline": 2.0, "ratio": 0.5, "unit": "s"}]
    results.write_text("".join(json.dumps(figure) + "\n" for figure in earlier))
    assert run_benchmark("recording_cost", "--runs", "1", "--output", str(results)).returncode == 0
    figures = ["recording_cost.per_run", "recording_cost.added_vs_sacred_sql_observer"]
    lines = json_lines(results.read_text())
    assert lines[:1] == earlier and [figure["benchmark"] for figure in lines[1:]] == figures


def help_of(script: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """What ``python benchmarks/<script>.py --help`` prints, the script run as ``__main__`` in this process with its
    directory first on ``sys.path`` as in its own process (~0.7 CPU s cheaper: its imports are loaded already); the
    script must end with status 0, as ``--help`` does."""
    monkeypatch.setattr(sys, "argv", [str(BENCHMARKS / f"{script}.py"), "--help"])
    monkeypatch.setattr(sys, "path", [str(BENCHMARKS), *sys.path])
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), pytest.raises(SystemExit) as exited:
        runpy.run_path(sys.argv[0], run_name="__main__")
    assert exited.value.code in (0, None), printed.getvalue()
    return printed.getvalue()


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_documents_the_full_size(script: str, monkeypatch: pytest.MonkeyPatch) -> None:
    printed = help_of(script, monkeypatch)
    assert "Full size:" in printed and "--output" in printed
