"""A synthetic learning curve for benchmarks/search_pruning.py: ``loss`` decays towards a floor set by ``x`` and ``y``, with noise."""

from __future__ import annotations

import math
import random
import time

import hydra
from omegaconf import DictConfig

from hyperspace_hydra import log_scalar


def floor(x: float, y: float) -> float:
    """Where the curve ends: minimum 0 at x = 0.3, y = 0.6."""
    return 4 * ((x - 0.3) ** 2 + (y - 0.6) ** 2)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> dict[str, float]:
    noise = random.Random(repr((cfg.x, cfg.y)))
    loss = math.inf
    for step in range(cfg.steps):
        time.sleep(cfg.sleep)
        loss = floor(cfg.x, cfg.y) + math.exp(-step / 4) + noise.gauss(0, cfg.noise)
        log_scalar("loss", loss, step)
    return {"loss": loss}


if __name__ == "__main__":
    main()
