"""A task that logs a learning curve: ``loss`` falls with each step towards a floor set by ``lr``."""

from __future__ import annotations

import math
import time

import hydra
from omegaconf import DictConfig

from hyperspace_hydra import log_scalar, should_stop


def curve(lr: float, step: int) -> float:
    """The loss at ``step``: a floor of ``(lr - 0.3)**2 * 10`` plus a decay shared by every configuration."""
    return (lr - 0.3) ** 2 * 10 + math.exp(-step / 3)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> object:
    if cfg.stop == "ask":
        should_stop()  # from here on this task stops itself
    for step in range(cfg.steps):
        time.sleep(cfg.sleep)
        log_scalar("loss", curve(cfg.lr, step), step)
        if cfg.stop == "ask" and should_stop():
            print(f"stopping cleanly at step {step}", flush=True)
            return {"loss": curve(cfg.lr, step), "stopped_at": step}
    return {"loss": curve(cfg.lr, cfg.steps - 1)}


if __name__ == "__main__":
    main()
