"""Zero-cost pre-screening for any strategy: a space wrapper whose `sample`, `mutate` and
`crossover` draw a pool of candidates and return the one a zero-cost proxy scores best.

Because strategies only ever create candidates through their space, wrapping the space screens
the initial population of evolution, every mutation, and random search alike, without any
strategy knowing. Only the returned candidate is trained.

Zero-cost proxies grow with the size of a network (on MNIST-1D synflow's rank correlation with
the parameter count is about 0.9), so an uncapped screen mostly picks the largest candidate of
the pool, which is the slowest to train. With `cap` ("flops" or "params") only candidates whose
cost is at most the pool's median compete: the screen then picks the best-scored network of
ordinary size instead of the biggest one. The cap is on by default ("params": free once the model
is built, and on MNIST-1D as good a predictor of training CPU as FLOPs, whose counting costs about
ten times the proxy itself); `cap="none"` ranks by the proxy alone.

Each candidate is built once: its cost is counted and the proxy computed on that one model, and
both are cached by genome key. `scored` and `seconds` (process CPU time spent building and
scoring) report what the screen itself costs.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from ..evaluate.cost import count_flops, count_params
from ..evaluate.proxies import score_proxies
from ..space.base import Genome, SearchSpace
from ..space.wrapper import SpaceWrapper

CAPS = ("none", "flops", "params")


class ProxyScreenedSpace(SpaceWrapper):
    def __init__(self, space: SearchSpace, batch: torch.Tensor, proxy: str = "synflow", pool: int = 10,
                 sample_pool: int | None = None, cap: str = "params"):
        super().__init__(space)
        if pool < 1 or (sample_pool is not None and sample_pool < 1):
            raise ValueError("pool and sample_pool must be >= 1")
        if cap not in CAPS:
            raise ValueError(f"unknown cap {cap!r}; known: {', '.join(CAPS)}")
        self.batch, self.proxy, self.pool, self.cap = batch, proxy, pool, cap
        # Candidates drawn per random sample (initial populations, random search); 1 = unscreened.
        self.sample_pool = pool if sample_pool is None else sample_pool
        self.scored = 0  # candidates built and scored, for reporting the pre-screen's own cost
        self.seconds = 0.0  # process CPU seconds spent on them
        self._cache: dict[str, tuple[float, float]] = {}  # key -> (proxy score, cost)

    def _measure(self, genome: Genome) -> tuple[float, float]:
        key = self.inner.key(genome)
        if key not in self._cache:
            start = time.process_time()
            # Its own generator: scoring must not move the global RNG that seeds training.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                try:
                    model = self.inner.build(genome)
                    cost = 0.0
                    if self.cap == "params":
                        cost = float(count_params(model))
                    elif self.cap == "flops":
                        cost = float(count_flops(model, self.batch[:1]))
                    value = score_proxies(model, self.batch, (self.proxy,), inplace=True)[self.proxy]
                    if np.isnan(value):
                        value = -np.inf
                except (RuntimeError, ValueError, MemoryError):
                    value, cost = -np.inf, np.inf
            self._cache[key] = (value, cost)
            self.scored += 1
            self.seconds += time.process_time() - start
        return self._cache[key]

    def score(self, genome: Genome) -> float:
        return self._measure(genome)[0]

    def cost(self, genome: Genome) -> float:
        """The capped measure of an untrained candidate (0 without a cap)."""
        return self._measure(genome)[1]

    def pick(self, genomes: list[Genome]) -> int:
        """Index of the candidate the screen keeps: the best proxy score among those whose cost is
        at most the pool's median (all of them without a cap); the earliest drawn on ties."""
        measured = [self._measure(g) for g in genomes]
        eligible = list(range(len(genomes)))
        if self.cap != "none" and len(genomes) > 1:
            limit = statistics.median(cost for _, cost in measured)
            eligible = [i for i in eligible if measured[i][1] <= limit] or eligible
        return max(eligible, key=lambda i: (measured[i][0], -i))

    def sample(self, rng: np.random.Generator) -> Genome:
        pool = [self.inner.sample(rng) for _ in range(self.sample_pool)]
        return pool[0] if len(pool) == 1 else pool[self.pick(pool)]

    def mutate(self, genome: Genome, rng: np.random.Generator) -> tuple[Genome, str]:
        pool = [self.inner.mutate(genome, rng) for _ in range(self.pool)]
        return pool[0] if len(pool) == 1 else pool[self.pick([g for g, _ in pool])]

    def crossover(self, a: Genome, b: Genome, rng: np.random.Generator) -> Genome:
        pool = [self.inner.crossover(a, b, rng) for _ in range(self.pool)]
        return pool[0] if len(pool) == 1 else pool[self.pick(pool)]
