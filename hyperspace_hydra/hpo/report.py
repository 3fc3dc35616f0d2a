"""What is known about a search sweep: its trials, the best so far, the history it learns from, plots."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hyperspace_hydra.hpo.search import History, history, sweep_trials
from hyperspace_hydra.hpo.space import trial_overrides
from hyperspace_hydra.hpo.tuner import SearchSpec, Trial, build_study
from hyperspace_hydra.store import Store


@dataclass
class SearchState:
    """A search sweep as it stands: spec, its own trials (with their job ids) and the history used."""

    sweep: dict[str, Any]
    spec: SearchSpec
    job_ids: list[int]
    trials: list[Trial]
    history: History

    def best(self) -> tuple[int, Trial] | None:
        """The job id and trial with the best value so far (None before any trial has one)."""
        scored = [(job_id, trial) for job_id, trial in zip(self.job_ids, self.trials) if trial.value is not None]
        if not scored:
            return None
        pick = max if self.spec.direction == "maximize" else min
        return pick(scored, key=lambda pair: pair[1].value)

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
            "counts": self.sweep["counts"],
            "history_used": len(self.history.trials),
            "history_excluded": self.history.excluded,
            "best": None if best is None else {"job": best[0], "value": best[1].value, "overrides": trial_overrides(best[1].params)},
        }


def search_state(store: Store, sweep_id: int) -> SearchState:
    """Read a search sweep back from the store."""
    sweep = store.get_sweep(sweep_id)
    spec = SearchSpec.from_json(sweep["spec"])
    jobs = store.list_jobs(sweep_id=sweep_id)
    return SearchState(sweep, spec, [job["id"] for job in jobs], sweep_trials(store, jobs, spec), history(store, spec, [job["id"] for job in jobs]))


def write_plots(state: SearchState, path: Path) -> None:
    """One HTML file (plotly, works offline): objective over trials, and objective against each parameter."""
    from optuna.visualization import plot_optimization_history, plot_slice

    study = build_study(state.spec, state.history.trials + state.trials)
    figures = [plot_optimization_history(study), plot_slice(study)]
    figures[0].update_layout(title=f"Sweep {state.sweep['id']}: objective over trials (history first, then this sweep's trials)")
    parts = [figure.to_html(full_html=False, include_plotlyjs=index == 0) for index, figure in enumerate(figures)]
    path.write_text(f"<html><head><meta charset='utf-8'><title>Sweep {state.sweep['id']}</title></head><body>{''.join(parts)}</body></html>")
