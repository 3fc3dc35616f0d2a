"""``hyperspace ui``: server time of the first Runs page (filtered and sorted) over many stored runs,
against ``hyperspace runs ls --format json`` printing the same page.

N runs are recorded through the Store API as ``runs_ls_large.py`` records them, in SQLite (and
PostgreSQL with ``--backends``). Ours: ``GET /runs?where=model.lr<0.5; choices.aggregation=mean&sort=-result``
from a running ``hyperspace ui`` process, timed by the server itself (its ``Server-Timing`` header:
the store's queries and rendering the HTML page). Baseline: the CLI's handler for
``runs ls --where model.lr<0.5 --where choices.aggregation=mean --sort -result --limit 50
--format json``, called in this process (Python's start-up left out), output discarded. Both ask
the store for the same page; the script checks that they list the same runs. Ratio: ours /
baseline. The issue's bar: ours below 300 ms at 100,000 runs.

Small default size: --runs 2000. Full size: --runs 100000 --backends sqlite postgresql
(recording 100,000 runs through the Store API takes a long while on a 2-core machine).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from _common import HYPERSPACE, Figure, measure_on_stores
from runs_ls_large import PAGE, WHERE, record

from hyperspace_hydra import cli
from hyperspace_hydra.store import open_store

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
SORT = "-result"


@contextlib.contextmanager
def ui_server(uri: str) -> Iterator[str]:
    """A ``hyperspace ui`` process over ``uri`` on a free port; yields its URL."""
    server = subprocess.Popen([str(HYPERSPACE), "ui", "--store", uri, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        yield re.search(r"http://\S+/", server.stdout.readline()).group(0).rstrip("/")
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)


def ui_page(url: str, path: str) -> tuple[float, bytes]:
    """(server milliseconds, body) of one GET of the first Runs page."""
    query = urllib.parse.urlencode({"where": "; ".join(WHERE), "sort": SORT})
    with urllib.request.urlopen(f"{url}{path}?{query}", timeout=120) as response:
        timing = response.headers["Server-Timing"]
        return float(timing.partition("dur=")[2]), response.read()


def cli_page(uri: str) -> tuple[float, list[int]]:
    """(milliseconds, run ids) of the CLI's ``runs ls`` handler printing the same page as JSON lines."""
    args = ["runs", "ls", "--store", uri, *(item for text in WHERE for item in ("--where", text)), "--sort", SORT, "--limit", str(PAGE), "--format", "json"]
    printed = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(printed):
        assert cli.main(args) == 0
    return (time.perf_counter() - started) * 1000, [json.loads(line)["id"] for line in printed.getvalue().splitlines()]


def measure(backend: str, uri: str, count: int, repeats: int) -> Figure:
    with open_store(uri) as store:
        record(store, count)
    baseline_ms, cli_ids = zip(*(cli_page(uri) for _ in range(repeats + 1)))
    with ui_server(uri) as url:
        shown = json.loads(ui_page(url, "/runs.json")[1])
        assert [row["id"] for row in shown["rows"]] == list(cli_ids[0]), "the page lists the runs that runs ls lists"
        ours_ms = [ui_page(url, "/runs")[0] for _ in range(repeats + 1)]
    return Figure(f"ui_first_page.{backend}.{count}_runs", ours=statistics.median(ours_ms[1:]), baseline=statistics.median(baseline_ms[1:]), unit="ms",
                  note=f"server time of the Runs page (first {PAGE}, filtered, sorted) vs runs ls --format json of the same page in-process; first request of each left out")  # fmt: skip


def main() -> None:
    measure_on_stores(__doc__, measure, "timed requests per figure (median), after one left out")


if __name__ == "__main__":
    main()
