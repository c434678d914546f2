"""Parent selection operators: given fitnesses, return the indices of chosen parents.

Each is a small object so a user can pass their own: anything with `select(fitness, k, rng)`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np


class Selection(ABC):
    @abstractmethod
    def select(self, fitness: Sequence[float], k: int, rng: np.random.Generator) -> list[int]:
        """Indices (with repetition) of `k` parents chosen from a population with these fitnesses."""


class Tournament(Selection):
    """The fittest of `size` members drawn uniformly without replacement."""

    def __init__(self, size: int = 3):
        if size < 1:
            raise ValueError("tournament size must be >= 1")
        self.size = size

    def select(self, fitness: Sequence[float], k: int, rng: np.random.Generator) -> list[int]:
        f = np.asarray(fitness, dtype=float)
        size = min(self.size, len(f))
        out = []
        for _ in range(k):
            picks = rng.choice(len(f), size=size, replace=False)
            out.append(int(picks[np.argmax(f[picks])]))
        return out


class RouletteWheel(Selection):
    """Fitness-proportional: P(i) = f_i / sum(f). Negative fitnesses are shifted so the worst is 0."""

    def probabilities(self, fitness: Sequence[float]) -> np.ndarray:
        f = np.asarray(fitness, dtype=float)
        if f.min() < 0:
            f = f - f.min()
        total = f.sum()
        return f / total if total > 0 else np.full(len(f), 1 / len(f))

    def select(self, fitness: Sequence[float], k: int, rng: np.random.Generator) -> list[int]:
        return [int(i) for i in rng.choice(len(fitness), size=k, p=self.probabilities(fitness))]


class Rank(Selection):
    """Linear rank selection: P(i) proportional to i's rank (worst 1, best n); ties share ranks."""

    def probabilities(self, fitness: Sequence[float]) -> np.ndarray:
        f = np.asarray(fitness, dtype=float)
        # Average ranks for ties, so equal fitness means equal chance.
        order = np.argsort(f, kind="stable")
        ranks = np.empty(len(f))
        ranks[order] = np.arange(1, len(f) + 1)
        for value in np.unique(f):
            tied = f == value
            ranks[tied] = ranks[tied].mean()
        return ranks / ranks.sum()

    def select(self, fitness: Sequence[float], k: int, rng: np.random.Generator) -> list[int]:
        return [int(i) for i in rng.choice(len(fitness), size=k, p=self.probabilities(fitness))]


SELECTIONS: dict[str, type[Selection]] = {"tournament": Tournament, "roulette": RouletteWheel, "rank": Rank}
