"""Entry point: ``python -m study.run task=digits aggregation=branching classifier.C=10``."""

from __future__ import annotations

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> dict[str, float]:
    """Run the task's scenario with the chosen pieces; the returned metrics are the run's result."""
    scenario = instantiate(cfg.task)
    return scenario.run(
        seed=cfg.seed,
        aggregation=instantiate(cfg.aggregation),
        classifier=instantiate(cfg.classifier),
        schedule=instantiate(cfg.schedule),
    )


if __name__ == "__main__":
    main()
