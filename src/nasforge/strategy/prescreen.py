"""Zero-cost pre-screening for any strategy: a space wrapper whose `sample` and `mutate` draw a
pool of candidates and return the one a zero-cost proxy scores best.

Because strategies only ever create candidates through their space, wrapping the space screens
the initial population of evolution, every mutation, and random search alike, without any
strategy knowing. Only the returned candidate is trained.
"""

from __future__ import annotations

import numpy as np
import torch

from ..evaluate.proxies import score_proxies
from ..space.base import Genome, SearchSpace
from ..space.wrapper import SpaceWrapper


class ProxyScreenedSpace(SpaceWrapper):
    def __init__(self, space: SearchSpace, batch: torch.Tensor, proxy: str = "synflow", pool: int = 10):
        super().__init__(space)
        self.batch, self.proxy, self.pool = batch, proxy, pool
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
