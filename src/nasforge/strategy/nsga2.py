"""NSGA-II (Deb et al. 2002): Pareto search over several objectives with any space's own mutation
and crossover.

Each generation, parents are picked by binary tournament on (front rank, crowding distance), recombined
with probability `crossover_rate` and mutated with probability `mutation_rate` (always, when no
crossover happened or the child equals a parent). Once a generation's results are all in, parents and
children are merged, sorted into non-dominated fronts, and the next population is filled front by
front, the last front cut by crowding distance. As in pymoo's default, children the search has
already proposed are drawn again (up to `novelty_tries` times): a repeat costs a generation slot and
teaches nothing.

Objective values come from the metrics of the Observation passed to `tell`; the name `reward` also
means the observation's reward. A failed candidate, or one
without every objective, takes no part. Generational, like the genetic algorithm: `ask` answers None
(wait) once a generation is out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field

from ..objectives import Objective, crowding_distance, non_dominated_sort
from ..space.base import Genome, SearchSpace
from .base import Candidate, FixedOptions, Observation, Strategy, StrategyOptions


class NSGA2Options(FixedOptions):
    population: int = Field(20, ge=2, le=100000, description="population size of each generation")
    crossover_rate: float = Field(0.5, ge=0, le=1, description="probability that a child mixes two parents")
    mutation_rate: float = Field(1.0, ge=0, le=1, description="probability of a mutation after crossover")


@dataclass
class Point:
    """An evaluated candidate: its objective values, oriented so that smaller is better."""

    trial: int
    genome: Genome
    values: tuple[float, ...]


class NSGA2(Strategy):
    name = "nsga2"
    multi_objective = True  # reads objective vectors from each Observation's metrics
    Options = NSGA2Options

    @classmethod
    def from_options(cls, space: SearchSpace, seed: int, options: StrategyOptions, objectives: Sequence[str] = ()) -> NSGA2:
        return cls(space, seed, objectives=tuple(objectives), **options.model_dump(exclude={"name"}))

    def __init__(self, space: SearchSpace, seed: int = 0, objectives: Sequence[str | Objective] = ("accuracy", "params"),
                 population: int = 20, crossover_rate: float = 0.5, mutation_rate: float = 1.0, novelty_tries: int = 20):
        super().__init__(space, seed)
        self.objectives = [Objective.parse(o) for o in objectives]
        if len(self.objectives) < 2:
            raise ValueError(f"NSGA-II needs two or more objectives, got {[o.name for o in self.objectives]}")
        if population < 2 or not (0 <= crossover_rate <= 1 and 0 <= mutation_rate <= 1) or novelty_tries < 1:
            raise ValueError("need population >= 2, crossover_rate and mutation_rate in [0, 1], novelty_tries >= 1")
        self.population_size = population
        self.crossover_rate, self.mutation_rate, self.novelty_tries = crossover_rate, mutation_rate, novelty_tries
        self.population: list[Point] = []
        self.offspring: list[Point] = []
        self.rank: list[int] = []
        self.crowding: list[float] = []
        self.generation_index = 0
        self.asked = self.told = 0
        self.seen: set[str] = set()

    # -- ask -------------------------------------------------------------------------------------
    def ask(self) -> Candidate | None:
        if self.asked >= self.population_size:
            return None  # the generation is out: wait for its results
        self.asked += 1
        cand = self._draw()
        for _ in range(self.novelty_tries - 1):
            if self.space.key(cand.genome) not in self.seen:
                break
            cand = self._draw()
        self.seen.add(self.space.key(cand.genome))
        return cand

    def _draw(self) -> Candidate:
        return self._vary() if self.population else Candidate(self.space.sample(self.rng))

    def _tournament(self) -> Point:
        if len(self.population) == 1:
            return self.population[0]
        i, j = (int(k) for k in self.rng.choice(len(self.population), size=2, replace=False))
        # Crowded comparison: the better front wins, then the less crowded point.
        if (self.rank[i], -self.crowding[i]) <= (self.rank[j], -self.crowding[j]):
            return self.population[i]
        return self.population[j]

    def _vary(self) -> Candidate:
        a, b = self._tournament(), self._tournament()
        parents: tuple[int, ...] = (a.trial,)
        child, ops = a.genome, []
        if self.rng.random() < self.crossover_rate and a.genome != b.genome:
            child, parents = self.space.crossover(a.genome, b.genome, self.rng), (a.trial, b.trial)
            ops.append("crossover")
        if not ops or child in (a.genome, b.genome) or self.rng.random() < self.mutation_rate:
            child, op = self.space.mutate(child, self.rng)
            ops.append(op)
        return Candidate(child, parents, "+".join(ops))

    # -- tell ------------------------------------------------------------------------------------
    def values_of(self, observation: Observation) -> tuple[float, ...] | None:
        """The observation's objective vector (smaller is better), or None if one is missing."""
        values = []
        for o in self.objectives:
            v = observation.metrics.get(o.name)
            if v is None and o.name == "reward":
                v = observation.reward
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                return None
            values.append(-float(v) if o.maximize else float(v))
        return tuple(values)

    def tell(self, trial: int, candidate: Candidate, observation: Observation) -> None:
        self.told += 1
        self.seen.add(self.space.key(candidate.genome))
        values = self.values_of(observation) if not observation.failed else None
        if values is not None:
            self.offspring.append(Point(trial, candidate.genome, values))
        if self.told >= self.population_size:
            self._survive()

    def _survive(self) -> None:
        merged: list[Point] = []
        keys: set[str] = set()
        for p in self.population + self.offspring:  # a genome told twice takes one place
            key = self.space.key(p.genome)
            if key not in keys:
                keys.add(key)
                merged.append(p)
        chosen: list[int] = []
        if merged:
            points = np.array([p.values for p in merged], dtype=float)
            for front in non_dominated_sort(points):
                room = self.population_size - len(chosen)
                if len(front) <= room:
                    chosen += front
                    continue
                distance = crowding_distance(points[front])
                order = np.argsort(-distance, kind="stable")
                chosen += [front[int(i)] for i in order[:room]]
                break
        self.population = [merged[i] for i in chosen]
        self._rank_population()
        self.offspring, self.asked, self.told = [], 0, 0
        self.generation_index += 1

    def _rank_population(self) -> None:
        n = len(self.population)
        self.rank, self.crowding = [0] * n, [0.0] * n
        if not n:
            return
        points = np.array([p.values for p in self.population], dtype=float)
        for r, front in enumerate(non_dominated_sort(points)):
            distance = crowding_distance(points[front])
            for i, d in zip(front, distance, strict=True):
                self.rank[i], self.crowding[i] = r, float(d)

    def front(self) -> list[Point]:
        """The current population's first front."""
        return [p for p, r in zip(self.population, self.rank, strict=True) if r == 0]

    # -- persistence -----------------------------------------------------------------------------
    def _dump(self, points: list[Point]) -> list[list[Any]]:
        return [[p.trial, self.space.to_json(p.genome), list(p.values)] for p in points]

    def _undump(self, rows: list[list[Any]]) -> list[Point]:
        return [Point(int(t), self.space.from_json(g), tuple(float(v) for v in vals)) for t, g, vals in rows]

    def _state(self) -> dict[str, Any]:
        return {
            "objectives": [f"{o.name}:{'max' if o.maximize else 'min'}" for o in self.objectives],
            "population": self._dump(self.population),
            "offspring": self._dump(self.offspring),
            "generation_index": self.generation_index,
            "asked": self.asked,
            "told": self.told,
            "seen": sorted(self.seen),
        }

    def _load(self, state: dict[str, Any]) -> None:
        stored = [Objective.parse(o) for o in state["objectives"]]
        if stored != self.objectives:
            raise ValueError(f"the stored NSGA-II state optimised {[o.label for o in stored]}, not {[o.label for o in self.objectives]}")
        self.population = self._undump(state["population"])
        self.offspring = self._undump(state["offspring"])
        self.generation_index = int(state["generation_index"])
        self.asked, self.told = int(state["asked"]), int(state["told"])
        self.seen = set(state["seen"])
        self._rank_population()
