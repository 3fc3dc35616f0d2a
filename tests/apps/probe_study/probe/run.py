from __future__ import annotations

import ctypes
import logging
import os
import random
import signal
import sys
import time

import hydra
import numpy
from hydra.utils import instantiate
from omegaconf import DictConfig

from hyperspace_hydra import log_scalar

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> object:
    instantiate(cfg.model)
    print(f"hello from the task: {cfg.message}")
    sys.stdout.flush()
    log.info("a log line from the task")
    for step in range(cfg.steps):
        log_scalar("loss", 1.0 / (step + 1))
    log_scalar("lr", 0.5, step=10)
    if cfg.crash == "ignore_sigterm":  # a task that does not stop when asked: only SIGKILL ends it
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if cfg.sleep:
        print("sleeping", flush=True)
        time.sleep(cfg.sleep)
    if cfg.crash == "segfault":
        ctypes.string_at(0)
    if cfg.crash == "exit":
        os._exit(3)
    if cfg.fail:
        raise ValueError(f"task failed on purpose: {cfg.message}")
    if cfg.result == "float":
        return 0.25
    return {"score": cfg.score, "draw": random.random(), "numpy_draw": float(numpy.random.rand())}


if __name__ == "__main__":
    main()
