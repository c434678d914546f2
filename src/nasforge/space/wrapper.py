"""A space that wraps another and changes only how candidates are drawn.

Strategies create candidates only through their space, so a wrapper that overrides `sample`,
`mutate` and `crossover` (pre-screening by a proxy, enforcing constraints, ...) applies to every
strategy at once. Everything else is the inner space's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import G, SearchSpace


class SpaceWrapper(SearchSpace[G]):
    def __init__(self, inner: SearchSpace[G]):
        self.inner = inner
        self.name = inner.name

    def sample(self, rng: np.random.Generator) -> G:
        return self.inner.sample(rng)

    def mutate(self, genome: G, rng: np.random.Generator) -> tuple[G, str]:
        return self.inner.mutate(genome, rng)

    def crossover(self, a: G, b: G, rng: np.random.Generator) -> G:
        return self.inner.crossover(a, b, rng)

    def build(self, genome: G) -> Any:
        return self.inner.build(genome)

    def to_json(self, genome: G) -> Any:
        return self.inner.to_json(genome)

    def from_json(self, data: Any) -> G:
        return self.inner.from_json(data)

    def describe(self, genome: G) -> str:
        return self.inner.describe(genome)

    def key(self, genome: G) -> str:
        return self.inner.key(genome)

    def refusal(self, genome: G) -> str | None:
        return self.inner.refusal(genome)

    def config(self) -> dict[str, Any]:
        return self.inner.config()

    def module_map(self, parent: G, child: G) -> dict[str, str] | None:
        return self.inner.module_map(parent, child)

    def training_overrides(self, genome: G) -> dict[str, Any]:
        return self.inner.training_overrides(genome)

    def receptive_field(self, genome: G) -> int | None:
        return self.inner.receptive_field(genome)

    def decisions(self) -> list[int]:
        return self.inner.decisions()

    def encode(self, genome: G) -> list[int]:
        return self.inner.encode(genome)

    def decode(self, choices: Any) -> G:
        # A policy's sample is its own choice: wrappers change sample/mutate/crossover only.
        return self.inner.decode(choices)

    def occurred(self, genome: G) -> list[bool] | None:
        return self.inner.occurred(genome)

    def decision_features(self, choices: np.ndarray) -> np.ndarray:
        return self.inner.decision_features(choices)

    def __getattr__(self, name: str) -> Any:  # space-specific extras (repair, plan, all_genomes, ...)
        if name == "inner":  # not set yet (unpickling): no recursion through __getattr__
            raise AttributeError(name)
        return getattr(self.inner, name)
