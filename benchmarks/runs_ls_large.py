"""``runs ls`` over many stored runs: the first page of a filtered, sorted query done by the store,
against the same query done by loading the runs table into pandas.

N runs of a small study-like config (``model.width``, ``model.lr``, ``aggregation``) are
recorded through the Store API in SQLite (and PostgreSQL with ``--backends``). Ours:
``list_runs(where=[model.lr<0.5, choices.aggregation=mean], sort=-objective, limit=50)``,
the query ``hyperspace runs ls --where ... --sort -result --limit 50`` runs. Baseline: read
the whole ``runs`` table with ``pandas.read_sql``, parse the JSON columns, filter, sort and
take 50 rows. Ratio: ours / baseline (lower is better).

Small default size: --runs 2000. Full size: --runs 100000 --backends sqlite postgresql
(recording 100,000 runs through the Store API takes a long while on a 2-core machine).
"""

from __future__ import annotations

import json
import random
import statistics
import sys
from pathlib import Path

import sqlalchemy as sa
from _common import Figure, durations, measure_on_stores

from hyperspace_hydra.filters import parse_condition
from hyperspace_hydra.store import COMPLETED, Store, open_store

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
WHERE = ["model.lr<0.5", "choices.aggregation=mean"]
PAGE = 50


def record(store: Store, count: int) -> None:
    """``count`` completed runs with varied configs."""
    rng = random.Random(0)
    for _ in range(count):
        aggregation = rng.choice(["mean", "branching"])
        config = {"model": {"_target_": "study.Model", "width": rng.choice([16, 32, 64]), "lr": rng.random()}, "seed": rng.randrange(10)}
        run_id = store.start_run({"task": "t", "config": config, "choices": {"aggregation": aggregation}})
        value = rng.random()
        store.finish_run(run_id, COMPLETED, {"result": value, "objective": value})


def ours(store: Store) -> list[int]:
    runs = store.list_runs(PAGE, where=[parse_condition(text) for text in WHERE], sort="-objective")
    return [run["_id"] for run in runs]


def baseline(uri: str) -> list[int]:
    import pandas

    engine = sa.create_engine(uri.replace("postgresql://", "postgresql+psycopg://"))
    table = pandas.read_sql("select * from runs", engine)
    engine.dispose()
    config = table["config"].map(_json)
    choices = table["choices"].map(_json)
    selected = table[(config.map(lambda c: c["model"]["lr"]) < 0.5) & (choices.map(lambda c: c["aggregation"]) == "mean")]
    return selected.sort_values(["objective", "id"], ascending=[False, True]).head(PAGE)["id"].tolist()


def _json(value: object) -> dict:
    return json.loads(value) if isinstance(value, str) else value


def measure(backend: str, uri: str, count: int, repeats: int) -> Figure:
    with open_store(uri) as store:
        record(store, count)
        first_page = ours(store)
        assert first_page == baseline(uri), "both ways give the same page"
        ours_seconds = statistics.median(durations(lambda: ours(store), repeats))
    baseline_seconds = statistics.median(durations(lambda: baseline(uri), repeats))
    return Figure(f"runs_ls_first_page.{backend}.{count}_runs", ours=ours_seconds * 1000, baseline=baseline_seconds * 1000, unit="ms",
                  note=f"filtered, sorted first page of {PAGE} done by the store vs loading the table into pandas")  # fmt: skip



def main() -> None:
    measure_on_stores(__doc__, measure, "timed queries per figure (median)")


if __name__ == "__main__":
    main()
