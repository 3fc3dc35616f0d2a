from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Layer:
    width: int = 8
    activation: str = "relu"


class Model:
    def __init__(self, depth: int, layer: Layer | None = None, dropout: float = 0.1, blocks: list | None = None, **extra: object) -> None:
        self.depth = depth
        self.layer = layer
        self.dropout = dropout


@dataclass
class Optimizer:
    lr: float = 0.01
    betas: list = field(default_factory=lambda: [0.9, 0.999])
