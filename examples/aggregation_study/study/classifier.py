"""Classifiers trained by mini-batch SGD on a cross-entropy loss with an L2 penalty.

``C`` is the inverse regularisation strength, as in scikit-learn: the penalty on the
weights is ``||W||^2 / (2 C n)`` for ``n`` training examples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _cross_entropy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.log(probabilities[np.arange(len(labels)), labels] + 1e-12).mean())


@dataclass
class SoftmaxRegression:
    """A linear model: one weight vector per class."""

    C: float = 1.0
    _weights: list[np.ndarray] = field(default_factory=list, init=False, repr=False)

    def start(self, n_features: int, n_classes: int, rng: np.random.Generator) -> None:
        self._weights = [rng.normal(0, 0.01, (n_features, n_classes)), np.zeros(n_classes)]

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        weights, bias = self._weights
        return _softmax(features @ weights + bias)

    def train_epoch(self, features: np.ndarray, labels: np.ndarray, lr: float, batch_size: int, rng: np.random.Generator) -> float:
        penalty = 1.0 / (self.C * len(labels))
        for batch in _batches(len(labels), batch_size, rng):
            x, y = features[batch], labels[batch]
            delta = self.predict_proba(x)
            delta[np.arange(len(y)), y] -= 1
            delta /= len(y)
            weights, bias = self._weights
            weights -= lr * (x.T @ delta + penalty * weights)
            bias -= lr * delta.sum(axis=0)
        return _cross_entropy(self.predict_proba(features), labels)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.predict_proba(features).argmax(axis=1)


@dataclass
class MLP:
    """One hidden layer of ``hidden`` ReLU units, then a softmax layer."""

    C: float = 1.0
    hidden: int = 64
    _weights: list[np.ndarray] = field(default_factory=list, init=False, repr=False)

    def start(self, n_features: int, n_classes: int, rng: np.random.Generator) -> None:
        self._weights = [
            rng.normal(0, np.sqrt(2.0 / n_features), (n_features, self.hidden)),
            np.zeros(self.hidden),
            rng.normal(0, np.sqrt(1.0 / self.hidden), (self.hidden, n_classes)),
            np.zeros(n_classes),
        ]

    def _forward(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w1, b1, w2, b2 = self._weights
        hidden = np.maximum(features @ w1 + b1, 0.0)
        return hidden, _softmax(hidden @ w2 + b2)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return self._forward(features)[1]

    def train_epoch(self, features: np.ndarray, labels: np.ndarray, lr: float, batch_size: int, rng: np.random.Generator) -> float:
        penalty = 1.0 / (self.C * len(labels))
        for batch in _batches(len(labels), batch_size, rng):
            x, y = features[batch], labels[batch]
            w1, b1, w2, b2 = self._weights
            hidden, delta = self._forward(x)
            delta[np.arange(len(y)), y] -= 1
            delta /= len(y)
            delta_hidden = (delta @ w2.T) * (hidden > 0)
            w2 -= lr * (hidden.T @ delta + penalty * w2)
            b2 -= lr * delta.sum(axis=0)
            w1 -= lr * (x.T @ delta_hidden + penalty * w1)
            b1 -= lr * delta_hidden.sum(axis=0)
        return _cross_entropy(self.predict_proba(features), labels)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.predict_proba(features).argmax(axis=1)


def _batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[start : start + batch_size] for start in range(0, n, batch_size)]
