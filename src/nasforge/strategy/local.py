"""Local search (hill climbing with restarts), the strong simple baseline of White et al. 2021.

After `init` random samples it climbs from the best: the neighbours of the current architecture
are tried in random order and the first one that beats it becomes current (first improvement,
which spends fewer queries per step than steepest ascent). When every neighbour has been tried
the current one is a local optimum and the search restarts from a random sample.

Neighbours are all single-decision changes when the space has decisions, otherwise `neighbours`
distinct mutations.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..space.base import Genome, SearchSpace
from .base import Candidate, FixedOptions, Member, Observation, Strategy
from .decisions import encode_or_none


class LocalOptions(FixedOptions):
    init: int = Field(10, ge=1, le=100000, description="random samples before climbing")
    neighbours: int = Field(30, ge=1, le=100000, description="neighbours tried around the incumbent before restarting")


class LocalSearch(Strategy):
    name = "local"
    Options = LocalOptions

    def __init__(self, space: SearchSpace, seed: int = 0, init: int = 10, neighbours: int = 30):
        super().__init__(space, seed)
        if init < 1 or neighbours < 1:
            raise ValueError("need init >= 1 and neighbours >= 1")
        self.init, self.neighbours = init, neighbours
        try:
            self.sizes: list[int] | None = [int(n) for n in space.decisions()]
        except NotImplementedError:
            self.sizes = None
        self.seen: dict[str, float | None] = {}  # key -> reward (None while out or failed)
        self.told = 0
        self.current: Member | None = None
        self.queue: list[Genome] = []
        self.restarting = False
        self.best_init: Member | None = None

    def _neighbourhood(self, genome: Genome) -> list[Genome]:
        found: dict[str, Genome] = {}
        sizes = self.sizes
        choices = encode_or_none(self.space, genome) if sizes else None
        if sizes and choices is not None:
            for i, n in enumerate(sizes):
                for value in range(n):
                    if value != choices[i]:
                        varied = list(choices)
                        varied[i] = value
                        g = self.space.decode(varied)
                        found.setdefault(self.space.key(g), g)
        else:
            for _ in range(4 * self.neighbours):
                g, _ = self.space.mutate(genome, self.rng)
                found.setdefault(self.space.key(g), g)
                if len(found) >= self.neighbours:
                    break
        # Single-choice changes bypass the space's mutate, so a constrained space is asked directly:
        # an infeasible neighbour would only come back as a failed trial.
        fresh = [g for k, g in found.items() if k not in self.seen and k != self.space.key(genome) and self.space.admits(g)]
        order = self.rng.permutation(len(fresh))
        return [fresh[int(i)] for i in order]

    def ask(self) -> Candidate:
        if len(self.seen) < self.init or self.current is None or self.restarting:
            genome = self.space.sample(self.rng)
            operator = "random" if len(self.seen) < self.init else "restart"
            if operator == "restart":
                self.restarting = False
        else:
            while self.queue and self.space.key(self.queue[-1]) in self.seen:
                self.queue.pop()
            if not self.queue:
                self.restarting = True
                return self.ask()
            genome, operator = self.queue.pop(), "neighbour"
        self.seen.setdefault(self.space.key(genome), None)
        parents = (self.current.trial,) if operator == "neighbour" and self.current else ()
        return Candidate(genome, parents, operator)

    def tell(self, trial: int, candidate: Candidate, observation: Observation) -> None:
        reward = observation.reward
        self.seen[self.space.key(candidate.genome)] = reward
        self.told += 1
        if reward is None:
            return
        member = Member(trial, candidate.genome, reward)
        if self.current is None:
            # Still in the initial random set: climb from its best once it is complete.
            if self.best_init is None or reward > self.best_init.reward:
                self.best_init = member
            if self.told >= self.init:
                self._move(self.best_init)
        elif candidate.operator == "restart" or reward > self.current.reward:
            self._move(member)

    def _move(self, member: Member) -> None:
        self.current = member
        self.queue = self._neighbourhood(member.genome)

    def _state(self) -> dict[str, Any]:
        return {
            "seen": self.seen,
            "told": self.told,
            "current": self._dump_members([self.current]) if self.current else None,
            "best_init": self._dump_members([self.best_init]) if self.best_init else None,
            "queue": [self.space.to_json(g) for g in self.queue],
            "restarting": self.restarting,
        }

    def _load(self, state: dict[str, Any]) -> None:
        self.seen = dict(state["seen"])
        self.told = int(state["told"])
        self.current = self._load_members(state["current"])[0] if state["current"] else None
        self.best_init = self._load_members(state["best_init"])[0] if state["best_init"] else None
        self.queue = [self.space.from_json(g) for g in state["queue"]]
        self.restarting = bool(state["restarting"])
