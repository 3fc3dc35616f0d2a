"""Aggregations: turn a variable-length sequence of vectors into one fixed-size vector."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class MeanAggregation:
    """The mean of all vectors: order-free and small, but blind to position."""

    def __call__(self, sequence: np.ndarray) -> np.ndarray:
        return sequence.mean(axis=0)


@dataclass
class BranchingAggregation:
    """Pools at several scales and concatenates the results.

    For each entry ``k`` of ``agg_layers`` the sequence is cut into ``k`` contiguous
    branches and each branch is pooled (mean or max), so ``[4, 2]`` keeps coarse
    position information at two resolutions. A branch past the end of a short
    sequence contributes zeros.
    """

    agg_layers: list[int] = field(default_factory=lambda: [4, 2])
    pooling: str = "mean"

    def __post_init__(self) -> None:
        if self.pooling not in ("mean", "max"):
            raise ValueError(f"pooling must be 'mean' or 'max', not {self.pooling!r}")
        if not self.agg_layers or min(self.agg_layers) < 1:
            raise ValueError(f"agg_layers must be positive branch counts, not {self.agg_layers!r}")

    def __call__(self, sequence: np.ndarray) -> np.ndarray:
        pool = np.mean if self.pooling == "mean" else np.max
        pooled = [
            pool(branch, axis=0) if len(branch) else np.zeros(sequence.shape[1])
            for branches in self.agg_layers
            for branch in np.array_split(sequence, branches)
        ]
        return np.concatenate(pooled)
