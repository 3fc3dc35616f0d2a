"""The no-op study's app: ``python -m noop.run message=3`` runs a task that does nothing."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    """The task: does nothing and returns 0.0 (the benchmarks' lower limit of work)."""
    return 0.0


if __name__ == "__main__":
    main()
