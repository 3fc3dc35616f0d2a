"""What is known about a search sweep: its trials, the best so far, the history it learns from, plots."""

from __future__ import annotations

import html
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hyperspace_hydra.files import write_whole
from hyperspace_hydra.hpo import pruned_apart
from hyperspace_hydra.hpo.history import HISTORY_FIELDS, searched_params
from hyperspace_hydra.hpo.search import History, history, objective_missing, scored_trial, sweep_trials
from hyperspace_hydra.hpo.space import trial_overrides
from hyperspace_hydra.hpo.tuner import SearchSpec, Trial, best_index, build_study
from hyperspace_hydra.store import COMPLETED, RUNNING, Store
from hyperspace_hydra.store.base import PRUNED


@dataclass
class SearchState:
    """A search sweep as it stands: spec, its own trials and the history used.

    A queued search's trials are its jobs (``ids`` are job ids, ``counts`` jobs per state),
    a local search's its runs (run ids, runs per status).
    """

    sweep: dict[str, Any]
    spec: SearchSpec
    id_kind: str
    ids: list[int]
    trials: list[Trial]
    counts: dict[str, int]
    history: History
    objective_missing: str | None = None
    """Why the sweep's completed runs cannot score it (a result without the objective), which stops a search."""

    def best(self) -> tuple[int, Trial] | None:
        """The id and trial with the best value so far (None before any trial has one)."""
        index = best_index(self.trials, self.spec.direction)
        return None if index is None else (self.ids[index], self.trials[index])

    def summary(self) -> dict[str, Any]:
        """Plain data for ``hyperspace sweep show``."""
        best = self.best()
        return {
            "sweep": self.sweep["id"],
            "study": self.sweep["study"],
            "space": {name: repr(distribution) for name, distribution in self.spec.space.items()},
            "fixed": self.spec.fixed,
            "sampler": self.spec.sampler,
            "direction": self.spec.direction,
            "metric": self.spec.metric,
            "budget": self.spec.n_trials,
            "state": self.sweep["state"],
            "counts": self.counts,
            "history_used": len(self.history.trials),
            "history_excluded": self.history.excluded,
            "objective_missing": self.objective_missing,
            "best": None if best is None else {self.id_kind: best[0], "value": best[1].score, "overrides": trial_overrides(best[1].params, self.spec.added)},
        }


def search_state(store: Store, sweep_id: int) -> SearchState:
    """Read a search sweep back from the store."""
    sweep = store.get_sweep(sweep_id)
    spec = SearchSpec.from_json(sweep["spec"])
    past = history(store, spec, sweep_id)
    missing = objective_missing(store.list_runs(sweep_id=sweep_id, status=COMPLETED, fields=["status", "result"]), spec.metric)
    jobs = store.list_jobs(sweep_id=sweep_id)
    if jobs:
        trials = sweep_trials(store, jobs, spec)
        counts = pruned_apart(sweep["counts"], sum(trial.pruned for trial in trials))
        return SearchState(sweep, spec, "job", [job["id"] for job in jobs], trials, counts, past, missing)
    runs = store.list_runs(sweep_id=sweep_id, fields=["status", "info", *HISTORY_FIELDS])
    counts = dict(Counter(run["status"] for run in runs))
    return SearchState(sweep, spec, "run", [run["_id"] for run in runs], [_run_trial(run, spec) for run in runs], counts, past, missing)


def _run_trial(run: dict[str, Any], spec: SearchSpec) -> Trial:
    """A local search's run as its trial: scored when it completed with a value, pruned, pending while it runs, else failed."""
    params = searched_params(run, spec)
    if run["status"] == RUNNING:
        return Trial(params)
    if run["status"] in (COMPLETED, PRUNED):
        return scored_trial(params, run, spec.metric)
    return Trial(params, failed=True)


def write_plots(state: SearchState, path: Path) -> None:
    """One HTML file (plotly, works offline): objective over trials, and objective against each parameter."""
    import plotly.io
    from optuna.visualization import plot_optimization_history, plot_slice

    study = build_study(state.spec, state.history.trials + state.trials)
    figures = [plot_optimization_history(study), plot_slice(study)]
    figures[0].update_layout(title=f"Sweep {state.sweep['id']}: objective over trials (history first, then this sweep's trials)")
    shown = [shown_as_text(json.loads(figure.to_json())) for figure in figures]
    parts = [plotly.io.to_html(figure, full_html=False, include_plotlyjs=index == 0) for index, figure in enumerate(shown)]
    write_whole(path, f"<html><head><meta charset='utf-8'><title>Sweep {state.sweep['id']}</title></head><body>{''.join(parts)}</body></html>")


_TEMPLATES = ("hovertemplate", "texttemplate")
"""Figure keys whose strings are plotly's own markup (``<extra></extra>``), written by Optuna, not taken from the store."""


def shown_as_text(figure: Any) -> Any:
    """A figure in plotly's JSON form with every string it shows escaped, so that plotly.js shows it as text.

    plotly.js renders tags such as ``<b>`` and ``<a>`` in titles, labels, tick labels and hover text;
    a searched option such as ``choice('<b>x</b>', y)`` would be rendered, not shown. Strings without
    ``<``, ``>`` or ``&`` (every key word of plotly's own) are left as they are.
    """
    if isinstance(figure, dict):
        return {key: value if key in _TEMPLATES else shown_as_text(value) for key, value in figure.items()}
    if isinstance(figure, list):
        return [shown_as_text(item) for item in figure]
    return html.escape(figure, quote=False) if isinstance(figure, str) else figure
