"""A task that a test steps through: it waits for a file before it goes on, so a page can be watched while it runs."""

from __future__ import annotations

import time
from pathlib import Path

import hydra
from omegaconf import DictConfig

from hyperspace_hydra import log_scalar


def _wait_for(path: Path) -> None:
    while not path.exists():
        time.sleep(0.05)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    gate = Path(cfg.gate)
    print("waiting at the gate", flush=True)
    _wait_for(gate)
    print("through the gate", flush=True)
    log_scalar("progress", 0.75, step=1)
    _wait_for(gate.with_name(gate.name + ".end"))
    return 1.0


if __name__ == "__main__":
    main()
