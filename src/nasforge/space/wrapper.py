"""A space that wraps another and changes only how candidates are drawn.

Strategies create candidates only through their space, so a wrapper that overrides `sample`,
`mutate` and `crossover` (pre-screening by a proxy, enforcing constraints, ...) applies to every
strategy at once. Everything else is the inner space's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Genome, SearchSpace


class SpaceWrapper(SearchSpace):
    def __init__(self, inner: SearchSpace):
        self.inner = inner
        self.name = inner.name

    def sample(self, rng: np.random.Generator) -> Genome:
        return self.inner.sample(rng)

    def mutate(self, genome: Genome, rng: np.random.Generator) -> tuple[Genome, str]:
        return self.inner.mutate(genome, rng)

    def crossover(self, a: Genome, b: Genome, rng: np.random.Generator) -> Genome:
        return self.inner.crossover(a, b, rng)

    def build(self, genome: Genome) -> Any:
        return self.inner.build(genome)

    def to_json(self, genome: Genome) -> Any:
        return self.inner.to_json(genome)

    def from_json(self, data: Any) -> Genome:
        return self.inner.from_json(data)

    def describe(self, genome: Genome) -> str:
        return self.inner.describe(genome)

    def key(self, genome: Genome) -> str:
        return self.inner.key(genome)

    def refusal(self, genome: Genome) -> str | None:
        return self.inner.refusal(genome)

    def config(self) -> dict[str, Any]:
        return self.inner.config()

    def module_map(self, parent: Genome, child: Genome) -> dict[str, str] | None:
        return self.inner.module_map(parent, child)

    def training_overrides(self, genome: Genome) -> dict[str, Any]:
        return self.inner.training_overrides(genome)

    def receptive_field(self, genome: Genome) -> int | None:
        return self.inner.receptive_field(genome)

    def decisions(self) -> list[int]:
        return self.inner.decisions()

    def encode(self, genome: Genome) -> list[int]:
        return self.inner.encode(genome)

    def decode(self, choices: Any) -> Genome:
        # A policy's sample is its own choice: wrappers change sample/mutate/crossover only.
        return self.inner.decode(choices)

    def occurred(self, genome: Genome) -> list[bool] | None:
        return self.inner.occurred(genome)

    def decision_features(self, choices: np.ndarray) -> np.ndarray:
        return self.inner.decision_features(choices)

    def __getattr__(self, name: str) -> Any:  # space-specific extras (repair, plan, all_genomes, ...)
        if name == "inner":  # not set yet (unpickling): no recursion through __getattr__
            raise AttributeError(name)
        return getattr(self.inner, name)
