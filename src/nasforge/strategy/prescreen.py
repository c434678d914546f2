"""Zero-cost pre-screening for any strategy: a space wrapper whose `sample` and `mutate` draw a
pool of candidates and return the one a zero-cost proxy scores best.

Because strategies only ever create candidates through their space, wrapping the space screens
the initial population of evolution, every mutation, and random search alike, without any
strategy knowing. Only the returned candidate is trained.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..evaluate.proxies import score_proxies
from ..space.base import Genome, SearchSpace


class ProxyScreenedSpace(SearchSpace):
    def __init__(self, space: SearchSpace, batch: torch.Tensor, proxy: str = "synflow", pool: int = 10):
        self.inner, self.batch, self.proxy, self.pool = space, batch, proxy, pool
        self.name = space.name
        self.scored = 0  # proxies computed, for reporting the pre-screen's own cost
        self._cache: dict[str, float] = {}

    def score(self, genome: Genome) -> float:
        key = self.inner.key(genome)
        if key not in self._cache:
            # Its own generator: scoring must not move the global RNG that seeds training.
            with torch.random.fork_rng():
                torch.manual_seed(0)
                try:
                    model = self.inner.build(genome)
                    value = score_proxies(model, self.batch, (self.proxy,), inplace=True)[self.proxy]
                except (RuntimeError, ValueError, MemoryError):
                    value = -np.inf
            self._cache[key] = value
            self.scored += 1
        return self._cache[key]

    def sample(self, rng: np.random.Generator) -> Genome:
        return max((self.inner.sample(rng) for _ in range(self.pool)), key=self.score)

    def mutate(self, genome: Genome, rng: np.random.Generator) -> tuple[Genome, str]:
        return max((self.inner.mutate(genome, rng) for _ in range(self.pool)), key=lambda c: self.score(c[0]))

    def crossover(self, a: Genome, b: Genome, rng: np.random.Generator) -> Genome:
        return max((self.inner.crossover(a, b, rng) for _ in range(self.pool)), key=self.score)

    # Everything else is the inner space's.
    def build(self, genome: Genome) -> Any:
        return self.inner.build(genome)

    def to_json(self, genome: Genome) -> Any:
        return self.inner.to_json(genome)

    def from_json(self, data: Any) -> Genome:
        return self.inner.from_json(data)

    def describe(self, genome: Genome) -> str:
        return self.inner.describe(genome)

    def config(self) -> dict[str, Any]:
        return self.inner.config()

    def module_map(self, parent: Genome, child: Genome) -> dict[str, str] | None:
        return self.inner.module_map(parent, child)

    def training_overrides(self, genome: Genome) -> dict[str, Any]:
        return self.inner.training_overrides(genome)

    def decisions(self) -> list[int]:
        return self.inner.decisions()

    def encode(self, genome: Genome) -> list[int]:
        return self.inner.encode(genome)

    def decode(self, choices: Any) -> Genome:
        # A policy's sample is its own choice: screening applies to sample/mutate/crossover only.
        return self.inner.decode(choices)

    def decision_features(self, choices: np.ndarray) -> np.ndarray:
        return self.inner.decision_features(choices)

    def __getattr__(self, name: str) -> Any:  # space-specific extras (repair, problems, plan, ...)
        return getattr(self.inner, name)
