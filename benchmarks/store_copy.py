"""``hyperspace store copy`` from SQLite to PostgreSQL: runs per second and peak memory, against a plain bulk insert.

N finished runs (a small config, a result, a few lines of output, one metric series of 10
points each) are written straight into a SQLite store's tables. Ours: ``hyperspace store copy``
of them into an empty PostgreSQL database, in a process of its own (its start-up counts). Baseline, the limit: the same rows (runs, then metrics) inserted into empty
tables of another PostgreSQL database with one executemany each, in one transaction. Ratio:
ours / baseline, in milliseconds per run (lower is better). Also the same rows inserted with PostgreSQL's
COPY against that executemany (does COPY pay in ``add_finished_runs``?). Memory: the copy's peak resident
memory (the process's maxrss) for N runs against N/10 runs: about 1 when memory is bounded.

Small default size: --runs 2000. Full size: --runs 100000 (the issue's figure).
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from _common import Figure, argument_parser, clean_env, print_machine, report
from psycopg.types.json import Jsonb

from hyperspace_hydra.store import COMPLETED, open_store

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
POINTS_PER_RUN = 10
STARTED = dt.datetime(2026, 1, 1)


def rows(count: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows of ``count`` finished runs and of their metric points, ids from 1."""
    runs, metrics = [], []
    for run_id in range(1, count + 1):
        config = {"model": {"_target_": "study.Model", "width": 16 * (run_id % 4 + 1), "lr": run_id / count}, "seed": run_id % 10}
        runs.append({
            "id": run_id, "status": COMPLETED, "task": "t", "config": config, "config_given": config, "config_hash": f"{run_id:064x}",
            "result": run_id / count, "objective": run_id / count, "start_time": STARTED, "stop_time": STARTED + dt.timedelta(seconds=1),
            "captured_out": f"epoch 1 of run {run_id}\nepoch 2\nepoch 3\n", "info": {"metrics": [{"name": "loss"}]},
        })  # fmt: skip
        metrics.extend(
            {"run_id": run_id, "name": "loss", "step": step, "value": 1 / (step + 1), "timestamp": STARTED + dt.timedelta(seconds=step)}
            for step in range(POINTS_PER_RUN)
        )
    return runs, metrics


def bulk_insert(uri: str, runs: list[dict[str, Any]], metrics: list[dict[str, Any]]) -> None:
    """Insert ``runs`` and ``metrics`` into the store at ``uri`` (its tables created first) with one executemany each."""
    open_store(uri).close()
    engine = sa.create_engine(uri.replace("postgresql://", "postgresql+psycopg://"))
    tables = sa.MetaData()
    tables.reflect(engine, only=["runs", "metrics"])
    with engine.begin() as connection:
        connection.execute(tables.tables["runs"].insert(), runs)
        connection.execute(tables.tables["metrics"].insert(), metrics)
    engine.dispose()


def copy_insert(uri: str, runs: list[dict[str, Any]], metrics: list[dict[str, Any]]) -> None:
    """The same rows as :func:`bulk_insert` with PostgreSQL's ``COPY`` (psycopg 3 ``cursor.copy``), in one transaction:
    what ``add_finished_runs`` could reach with COPY instead of executemany."""
    open_store(uri).close()
    with psycopg.connect(uri) as connection, connection.cursor() as cursor:
        for table, rows in (("runs", runs), ("metrics", metrics)):
            with cursor.copy(f"COPY {table} ({', '.join(rows[0])}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([Jsonb(value) if isinstance(value, (dict, list)) else value for value in row.values()])


def timed(insert: Any, uri: str, runs: list[dict[str, Any]], metrics: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    insert(uri, runs, metrics)
    return time.perf_counter() - started


COPY_REPORTING_PEAK_RSS = (
    "import re, sys\n"
    "from hyperspace_hydra.cli import main\n"
    "status = main(['store', 'copy', *sys.argv[1:]])\n"
    "print('peak_rss_kb', re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1), file=sys.stderr)\n"
    "sys.exit(status)\n"
)
"""``hyperspace store copy SRC DST`` as the command runs it, then its peak resident memory on stderr's last line:
VmHWM, the high-water mark of this process's own memory (ru_maxrss would start from the forking parent's size)."""


def copy_seconds_and_peak_rss(source: str, destination: str) -> tuple[float, float]:
    """Run ``hyperspace store copy`` in a process of its own; its wall time and its peak resident memory in MB."""
    started = time.perf_counter()
    finished = subprocess.run([sys.executable, "-c", COPY_REPORTING_PEAK_RSS, source, destination], env=clean_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if finished.returncode != 0:
        raise SystemExit(f"store copy failed: {finished.stderr}")
    label, kilobytes = finished.stderr.splitlines()[-1].split()
    assert label == "peak_rss_kb", finished.stderr
    return seconds, int(kilobytes) / 1024


def new_database(cluster: Any) -> str:
    name = f"copy_{uuid.uuid4().hex}"
    with psycopg.connect(cluster.uri_for("postgres"), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return cluster.uri_for(name)


def measure(directory: str, cluster: Any, count: int) -> list[Figure]:
    small = max(count // 10, 1)
    sources = {size: f"sqlite:///{directory}/source_{size}.db" for size in (small, count)}
    for size, uri in sources.items():
        bulk_insert(uri, *rows(size))
    small_seconds, small_rss = copy_seconds_and_peak_rss(sources[small], new_database(cluster))
    copy_seconds, copy_rss = copy_seconds_and_peak_rss(sources[count], new_database(cluster))
    runs, metrics = rows(count)
    bulk_seconds = timed(bulk_insert, new_database(cluster), runs, metrics)
    copy_seconds_raw = timed(copy_insert, new_database(cluster), runs, metrics)
    per_run = Figure(
        f"store_copy.sqlite_to_postgresql.{count}_runs", ours=copy_seconds * 1000 / count, baseline=bulk_seconds * 1000 / count, unit="ms/run",
        note="hyperspace store copy (pages of whole runs, one transaction each) vs one bulk insert of the same rows",
        details={"runs_per_second": round(count / copy_seconds, 1), "bulk_runs_per_second": round(count / bulk_seconds, 1), "peak_rss_mb": round(copy_rss, 1)},
    )  # fmt: skip
    memory = Figure(
        f"store_copy.peak_rss.{count}_vs_{small}_runs", ours=copy_rss, baseline=small_rss, unit="MB",
        note="peak resident memory of the copy process: N runs vs N/10 runs (about 1 when memory is bounded)",
        details={"small_copy_seconds": round(small_seconds, 2)},
    )  # fmt: skip
    copy_vs_executemany = Figure(
        f"store_copy.postgresql_copy_vs_executemany.{count}_runs", ours=copy_seconds_raw * 1000 / count, baseline=bulk_seconds * 1000 / count,
        unit="ms/run", note="the same rows inserted with COPY (cursor.copy) vs executemany, one transaction each: what COPY would gain",
    )  # fmt: skip
    return [per_run, memory, copy_vs_executemany]


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--runs", type=int, default=2000, help="runs to copy (full size: 100000)")
    args = parser.parse_args()
    print_machine()
    from postgres_cluster import PostgresCluster

    with tempfile.TemporaryDirectory() as directory, PostgresCluster() as cluster:
        figures = measure(directory, cluster, args.runs)
    report(figures, args.output, vars(args) | {"output": str(args.output)})


if __name__ == "__main__":
    main()
