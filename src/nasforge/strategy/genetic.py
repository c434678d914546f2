"""Generational genetic algorithm with pluggable selection, elitism, crossover and mutation rates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field, model_validator

from ..space.base import SearchSpace
from .base import Candidate, FixedOptions, Member, Observation, Strategy, StrategyOptions
from .operators.selection import SELECTIONS, Selection, Tournament


class GeneticOptions(FixedOptions):
    population: int = Field(10, ge=2, le=100000, description="population size of each generation")
    selection: Literal["tournament", "roulette", "rank"] = Field("tournament", description="parent selection")
    tournament_size: int = Field(3, ge=1, le=100000, description="members per tournament (selection: tournament)")
    elitism: int = Field(1, ge=0, description="best members kept unchanged per generation")
    crossover_rate: float = Field(0.5, ge=0, le=1, description="probability that a child mixes two parents")
    mutation_rate: float = Field(1.0, ge=0, le=1, description="probability of a mutation after crossover")

    @model_validator(mode="after")
    def _sizes(self) -> GeneticOptions:
        if self.elitism >= self.population:
            raise ValueError(f"elitism ({self.elitism}) must be smaller than population ({self.population})")
        return self


class GeneticAlgorithm(Strategy):
    """Each generation: `elitism` best members survive unchanged; the other `population - elitism`
    places go to children of parents chosen by `selection`, recombined with probability
    `crossover_rate` and mutated with probability `mutation_rate` (always, when no crossover
    happened, so a child never merely copies its parent)."""

    name = "genetic"
    Options = GeneticOptions

    @classmethod
    def from_options(cls, space: SearchSpace, seed: int, options: StrategyOptions, objectives: Sequence[str] = ()) -> GeneticAlgorithm:
        o = GeneticOptions.model_validate(options.model_dump())
        selection = Tournament(o.tournament_size) if o.selection == "tournament" else SELECTIONS[o.selection]()
        return cls(space, seed, population=o.population, selection=selection, elitism=o.elitism,
                   crossover_rate=o.crossover_rate, mutation_rate=o.mutation_rate)

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        population: int = 10,
        selection: Selection | None = None,
        elitism: int = 1,
        crossover_rate: float = 0.5,
        mutation_rate: float = 1.0,
    ):
        super().__init__(space, seed)
        if population < 2 or not 0 <= elitism < population:
            raise ValueError("need population >= 2 and 0 <= elitism < population")
        if not (0 <= crossover_rate <= 1 and 0 <= mutation_rate <= 1):
            raise ValueError("crossover_rate and mutation_rate must lie in [0, 1]")
        self.population_size = population
        self.selection = selection or Tournament(3)
        self.elitism = elitism
        self.crossover_rate = crossover_rate
        self.mutation_rate = mutation_rate
        self.generation: list[Member] = []
        self.generation_index = 0
        self.children: list[Member] = []
        self.asked = 0
        self.told = 0

    def _target(self) -> int:
        if not self.generation:
            return self.population_size
        return self.population_size - min(self.elitism, len(self.generation))

    def ask(self) -> Candidate | None:
        if self.asked >= self._target():
            return None  # the generation is fully out: wait for its results
        self.asked += 1
        if not self.generation:
            return Candidate(self.space.sample(self.rng))
        fitness = [m.reward for m in self.generation]
        a, b = (self.generation[i] for i in self.selection.select(fitness, 2, self.rng))
        ops = []
        parents: tuple[int, ...] = (a.trial,)
        child = a.genome
        if self.rng.random() < self.crossover_rate and a.genome != b.genome:
            child, parents = self.space.crossover(a.genome, b.genome, self.rng), (a.trial, b.trial)
            ops.append("crossover")
        if not ops or child == a.genome or self.rng.random() < self.mutation_rate:
            child, op = self.space.mutate(child, self.rng)
            ops.append(op)
        return Candidate(child, parents, "+".join(ops))

    def tell(self, trial: int, candidate: Candidate, observation: Observation) -> None:
        reward = observation.reward
        self.told += 1
        if reward is not None:
            self.children.append(Member(trial, candidate.genome, reward))
        if self.told >= self._target():
            self._next_generation()

    def _next_generation(self) -> None:
        ranked = sorted(self.generation, key=lambda m: m.reward, reverse=True)
        # Children in trial order, not arrival order: parallel runs then match a serial one.
        survivors = ranked[: self.elitism] + sorted(self.children, key=lambda m: m.trial)
        # Failed children leave holes: fill them with the next best of the old generation.
        survivors += ranked[self.elitism : self.elitism + self.population_size - len(survivors)]
        self.generation = survivors[: self.population_size]
        self.generation_index += 1
        self.children, self.asked, self.told = [], 0, 0

    def _state(self) -> dict[str, Any]:
        return {
            "generation": self._dump_members(self.generation),
            "children": self._dump_members(self.children),
            "generation_index": self.generation_index,
            "asked": self.asked,
            "told": self.told,
        }

    def _load(self, state: dict[str, Any]) -> None:
        self.generation = self._load_members(state["generation"])
        self.children = self._load_members(state["children"])
        self.generation_index = state["generation_index"]
        self.asked, self.told = state["asked"], state["told"]
