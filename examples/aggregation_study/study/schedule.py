"""Training schedules: how many epochs, what batch size, which learning rate when."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class ConstantSchedule:
    """The same learning rate ``lr`` for every epoch; the base of the other schedules."""

    lr: float = 0.1
    epochs: int = 30
    batch_size: int = 32

    def learning_rate(self, epoch: int) -> float:
        return self.lr


@dataclass
class StepSchedule(ConstantSchedule):
    """The learning rate is multiplied by ``drop`` every ``every`` epochs."""

    drop: float = 0.5
    every: int = 10

    def learning_rate(self, epoch: int) -> float:
        return self.lr * self.drop ** (epoch // self.every)


@dataclass
class CosineSchedule(ConstantSchedule):
    """The learning rate follows half a cosine from ``lr`` down to ``min_lr``."""

    min_lr: float = 0.0

    def learning_rate(self, epoch: int) -> float:
        progress = epoch / max(self.epochs - 1, 1)
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * progress))
