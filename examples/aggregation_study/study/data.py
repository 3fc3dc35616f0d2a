"""Data sources: each loads a dataset of variable-length sequences of feature vectors."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

_TOKEN = re.compile(r"[a-z0-9']+")


@dataclass
class Dataset:
    """``sequences[i]`` is a (length, features) array labelled ``labels[i]``."""

    sequences: list[np.ndarray]
    labels: np.ndarray


@dataclass
class DigitsRows:
    """scikit-learn's bundled 8x8 digits; each image is a sequence of its 8 pixel rows."""

    def load(self) -> Dataset:
        digits = load_digits()
        images = digits.images / 16.0
        return Dataset([image for image in images], digits.target.astype(int))


@dataclass
class ImdbReviews:
    """Movie reviews in the aclImdb folder layout (``<path>/<split>/pos|neg/*.txt``).

    Each review becomes the sequence of its first ``max_tokens`` tokens, each token a
    fixed pseudo-random vector of ``embedding_dim`` numbers derived from its hash
    (a feature-hashing embedding: no vocabulary, no download).
    """

    path: str
    split: str = "train"
    max_tokens: int = 200
    embedding_dim: int = 32

    def load(self) -> Dataset:
        root = Path(self.path) / self.split
        files = [(file, label) for label, name in ((0, "neg"), (1, "pos")) for file in sorted((root / name).glob("*.txt"))]
        if not files:
            raise FileNotFoundError(f"no reviews in {root}/pos or {root}/neg (expected the aclImdb folder layout)")
        sequences = [self._embed(file.read_text(encoding="utf-8", errors="replace")) for file, _ in files]
        return Dataset(sequences, np.array([label for _, label in files]))

    def _embed(self, text: str) -> np.ndarray:
        tokens = _TOKEN.findall(text.lower())[: self.max_tokens] or ["<empty>"]
        return np.stack([_token_vector(token, self.embedding_dim) for token in tokens])


def _token_vector(token: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")
    return np.random.default_rng(seed).standard_normal(dim)
