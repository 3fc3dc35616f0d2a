"""The scenario: sequence classification with swappable aggregation, classifier and schedule."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from hyperspace_hydra import Scenario
from study.data import Dataset


class DataSource(Protocol):
    def load(self) -> Dataset: ...


class SequenceClassification(Scenario):
    """Aggregate each sequence into a vector, then train a classifier on a fixed split.

    The split (``split_seed``, ``test_fraction``, ``sample_size``) belongs to the task,
    so runs of one task are always evaluated on the same test set; the run's ``seed``
    drives initialisation and batch order.
    """

    def __init__(self, data: DataSource, sample_size: int | None = None, test_fraction: float = 0.25, split_seed: int = 0) -> None:
        self.data = data
        self.sample_size = sample_size
        self.test_fraction = test_fraction
        self.split_seed = split_seed

    def run(self, seed: int, **pieces: Any) -> dict[str, float]:
        aggregation, classifier, schedule = pieces["aggregation"], pieces["classifier"], pieces["schedule"]
        train_x, train_y, test_x, test_y = self._split(self.data.load(), aggregation)
        rng = np.random.default_rng(seed)
        classifier.start(train_x.shape[1], int(max(train_y.max(), test_y.max())) + 1, rng)
        for epoch in range(schedule.epochs):
            loss = classifier.train_epoch(train_x, train_y, schedule.learning_rate(epoch), schedule.batch_size, rng)
            self.log_scalar("train_loss", loss, epoch)
            self.log_scalar("test_accuracy", _accuracy(classifier.predict(test_x), test_y), epoch)
        return {
            "accuracy": _accuracy(classifier.predict(test_x), test_y),
            "train_accuracy": _accuracy(classifier.predict(train_x), train_y),
            "train_loss": loss,
        }

    def _split(self, dataset: Dataset, aggregation: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        order = np.random.default_rng(self.split_seed).permutation(len(dataset.labels))
        if self.sample_size is not None:
            order = order[: self.sample_size]
        features = np.stack([aggregation(dataset.sequences[i]) for i in order])
        labels = dataset.labels[order]
        n_test = max(1, int(round(len(order) * self.test_fraction)))
        train_x, test_x = features[n_test:], features[:n_test]
        mean, std = train_x.mean(axis=0), train_x.std(axis=0) + 1e-8
        return (train_x - mean) / std, labels[n_test:], (test_x - mean) / std, labels[:n_test]


def _accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    return float((predicted == labels).mean())
