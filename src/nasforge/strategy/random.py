from __future__ import annotations

from .base import Candidate, FixedOptions, Observation, Strategy


class RandomSearch(Strategy):
    """Independent uniform samples from the space: the baseline every strategy must beat."""

    name = "random"
    Options = FixedOptions

    def ask(self) -> Candidate:
        return Candidate(self.space.sample(self.rng))

    def tell(self, trial: int, candidate: Candidate, observation: Observation) -> None:
        pass
