"""Regularized (aging) evolution, Real et al. 2019: tournament selection, the oldest member dies."""

from __future__ import annotations

from collections import deque
from typing import Any

from pydantic import Field, model_validator

from ..space.base import SearchSpace
from .base import Candidate, FixedOptions, Member, Observation, Strategy


class EvolutionOptions(FixedOptions):
    population: int = Field(10, ge=1, le=100000, description="population size: the youngest members alive")
    sample_size: int = Field(3, ge=1, le=100000, description="tournament size: members drawn to pick a parent")

    @model_validator(mode="after")
    def _sizes(self) -> EvolutionOptions:
        if self.sample_size > self.population:
            raise ValueError(f"sample_size ({self.sample_size}) must not exceed population ({self.population})")
        return self


class RegularizedEvolution(Strategy):
    name = "evolution"
    Options = EvolutionOptions

    def __init__(self, space: SearchSpace, seed: int = 0, population: int = 10, sample_size: int = 3):
        super().__init__(space, seed)
        if population < 1 or not 1 <= sample_size <= population:
            raise ValueError("need population >= 1 and 1 <= sample_size <= population")
        self.population_size = population
        self.sample_size = sample_size
        self.population: deque[Member] = deque()

    def ask(self) -> Candidate:
        # Steady state, no generation barrier: with results outstanding the tournament simply
        # draws from whoever is alive now, so parallel workers never wait.
        if len(self.population) < self.population_size:
            return Candidate(self.space.sample(self.rng))
        members = list(self.population)
        picks = self.rng.choice(len(members), size=min(self.sample_size, len(members)), replace=False)
        parent = max((members[int(i)] for i in picks), key=lambda m: m.reward)
        child, operator = self.space.mutate(parent.genome, self.rng)
        return Candidate(child, (parent.trial,), operator)

    def tell(self, trial: int, candidate: Candidate, observation: Observation) -> None:
        reward = observation.reward
        if reward is None:
            return
        self.population.append(Member(trial, candidate.genome, reward))
        if len(self.population) > self.population_size:
            self.population.popleft()

    def _state(self) -> dict[str, Any]:
        return {"population": self._dump_members(list(self.population))}

    def _load(self, state: dict[str, Any]) -> None:
        self.population = deque(self._load_members(state["population"]))
