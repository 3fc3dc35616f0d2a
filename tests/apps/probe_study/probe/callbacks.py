from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class MultirunEndMarker(Callback):
    """Writes a file when a multirun ends, to show that on_multirun_end ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        Path(self.path).write_text("multirun ended")
