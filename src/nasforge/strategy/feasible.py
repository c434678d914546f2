"""Constraints for any strategy: a space wrapper whose `sample`, `mutate` and `crossover` only
return candidates that satisfy the study's constraints, measured before training.

Strategies create candidates through their space, so wrapping it constrains random search,
evolution, the genetic algorithm and NSGA-II alike. Each operation tries a bounded number of
times; `sample` then raises NoFeasibleCandidate naming the constraints and the best values it saw,
while mutation and crossover fall back to a fresh feasible sample (a parent whose every variant is
infeasible should not stall the search). `decode` is left alone: a policy's sample is its own
choice, and the evaluator fails an infeasible one without training it. Strategies that build
genomes themselves (local search's neighbourhood, the predictor's decoded candidates) ask `admits` first.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import numpy as np

from ..evaluate.constraints import Constraint, NoFeasibleCandidate, measures_of, violation
from ..space.base import Genome, SearchSpace
from ..space.wrapper import SpaceWrapper

# genome, measures wanted -> their values
MeasureFn = Callable[[Genome, Collection[str]], Mapping[str, Any]]


class FeasibleSpace(SpaceWrapper):
    def __init__(self, space: SearchSpace, constraints: Sequence[Constraint], measure: MeasureFn, tries: int = 1000):
        if not constraints:
            raise ValueError("a FeasibleSpace needs at least one constraint")
        super().__init__(space)
        self.constraints, self.measure, self.tries = tuple(constraints), measure, tries
        self.measures = measures_of(self.constraints)
        self._verdict: dict[str, str | None] = {}
        self._best: dict[str, float] = {}  # the most favourable value seen per measure, for the error message

    def why_infeasible(self, genome: Genome) -> str | None:
        key = self.inner.key(genome)
        if key not in self._verdict:
            values = self.measure(genome, self.measures)
            for c in self.constraints:
                v = values.get(c.measure)
                if v is not None:
                    v = float(v)
                    best = self._best.get(c.measure)
                    better = min if c.op in ("<", "<=") else max
                    self._best[c.measure] = v if best is None else better(best, v)
            self._verdict[key] = violation(self.constraints, values)
        return self._verdict[key]

    def feasible(self, genome: Genome) -> bool:
        return self.why_infeasible(genome) is None

    def refusal(self, genome: Genome) -> str | None:
        return self.why_infeasible(genome) or self.inner.refusal(genome)

    def sample(self, rng: np.random.Generator) -> Genome:
        for _ in range(self.tries):
            genome = self.inner.sample(rng)
            if self.feasible(genome):
                return genome
        seen = ", ".join(f"{m}={v:g}" for m, v in sorted(self._best.items()))
        raise NoFeasibleCandidate(
            f"no candidate of the {self.name!r} space satisfied {', '.join(map(str, self.constraints))} in {self.tries} "
            f"random samples (most favourable values seen: {seen or 'none'}); loosen the constraints or shrink the space")

    def mutate(self, genome: Genome, rng: np.random.Generator) -> tuple[Genome, str]:
        for _ in range(self.tries):
            child, op = self.inner.mutate(genome, rng)
            if self.feasible(child):
                return child, op
        return self.sample(rng), "resample"

    def crossover(self, a: Genome, b: Genome, rng: np.random.Generator) -> Genome:
        for _ in range(self.tries):
            child = self.inner.crossover(a, b, rng)
            if self.feasible(child):
                return child
        return self.sample(rng)
