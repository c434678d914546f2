"""Known genomes evaluated first (the config's `initial_genomes`; Optuna's `enqueue_trial`).

A user often has a design to improve on, such as a hand-built network or the best of an earlier
search. This wrapper makes the inner strategy's first asks those genomes: each of its first N
candidates is replaced by the next given genome (operator "given"), so the inner strategy's own
bookkeeping (asks versus tells, population size, generations) stays as it was, and whatever it does
with results, such as evolution's tournaments, now starts from the given designs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..space.base import Genome
from .base import Candidate, Observation, Strategy


class GivenFirst(Strategy):
    name = "given"

    def __init__(self, inner: Strategy, genomes: Sequence[Genome]):
        super().__init__(inner.space)
        self.inner = inner
        self.genomes = list(genomes)
        self.given = 0  # genomes handed out so far

    def __getattr__(self, name: str) -> Any:
        # population_size and the like, which the study reads off its strategy. Only called for
        # attributes not found normally; "inner" itself is guarded against unpickling recursion.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def ask(self) -> Candidate | None:
        cand = self.inner.ask()
        if cand is None or self.given >= len(self.genomes):
            return cand
        self.given += 1
        return Candidate(self.genomes[self.given - 1], (), "given")

    def tell(self, trial: int, candidate: Candidate, observation: Observation) -> None:
        self.inner.tell(trial, candidate, observation)

    def state_dict(self) -> dict[str, Any]:
        return {"given": self.given, "inner": self.inner.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.given = int(state["given"])
        self.inner.load_state_dict(state["inner"])
