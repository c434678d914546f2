"""Successive halving: many candidates get a few epochs, the top 1/eta of each rung earns more.

Pure bookkeeping, no training: the study asks it what to run next (a new candidate at the lowest
rung, or a promotion of a trial to the next rung, continued from its own weights) and tells it
results. A candidate's fate is decided when its rung closes: promoted, or reported to the strategy
with the reward of the highest fidelity it reached. Its state is plain JSON so a study killed in
the middle of a rung resumes that rung.
"""

from __future__ import annotations

from typing import Any

from .base import Decided, History, Promotion, Scheduler


class SuccessiveHalving(Scheduler):
    multi_fidelity = True

    def __init__(self, min_epochs: int = 1, eta: int = 3, rungs: int = 3):
        if min_epochs < 1 or eta < 2 or rungs < 2:
            raise ValueError("need min_epochs >= 1, eta >= 2 and rungs >= 2")
        self.eta = eta
        self.rung_epochs = [min_epochs * eta**k for k in range(rungs)]
        self.bracket_size = eta ** (rungs - 1)
        self.rung = 0
        self.members: list[int] = []  # trials of the current rung of the current bracket
        self.started: list[int] = []  # members whose run at this rung was handed out
        self.results: dict[int, float | None] = {}  # member -> reward at this rung (None: failed)
        self.brackets = 0

    @property
    def epochs(self) -> int:
        return self.rung_epochs[self.rung]

    def wants_new(self) -> bool:
        return self.rung == 0 and len(self.members) < self.bracket_size

    def start(self, trial: int) -> None:
        """A new candidate enters the lowest rung."""
        assert self.wants_new()
        self.members.append(trial)
        self.started.append(trial)

    def job_options(self, history: History | None = None) -> dict[str, Any]:
        return {"epochs": self.rung_epochs[0]}

    def next_promotion(self) -> Promotion | None:
        for trial in self.members:
            if trial not in self.started:
                self.started.append(trial)
                return Promotion(trial, self.rung_epochs[self.rung - 1], self.epochs)
        return None

    def requeue(self) -> None:
        """After a crash: promotions handed out but never finished are handed out again. (New
        candidates of the lowest rung are stored trials and are re-run by the study itself.)"""
        if self.rung > 0:
            self.started = [t for t in self.started if t in self.results]

    def record(self, trial: int, reward: float | None, epochs: int | None = None) -> list[Decided]:
        self.results[trial] = reward
        if self.rung == 0 and len(self.members) < self.bracket_size:
            return []  # the rung is still filling
        return self._close_if_done()

    @property
    def protected(self) -> set[int]:
        return set(self.members)

    def close(self) -> list[Decided]:
        """Close the lowest rung early with the members it has (the strategy has nothing to add)."""
        if self.rung == 0 and self.members and len(self.results) == len(self.members):
            self.bracket_size = len(self.members)
            return self._close_if_done()
        return []

    def _close_if_done(self) -> list[Decided]:
        if len(self.results) < len(self.members):
            return []
        ranked = sorted(self.members, key=lambda t: (self.results[t] is None, -(self.results[t] or 0.0), t))
        last = self.rung == len(self.rung_epochs) - 1
        keep = 0 if last else max(1, len(self.members) // self.eta)
        keep = min(keep, sum(self.results[t] is not None for t in ranked))
        decided = [Decided(t, self.results[t], self.epochs) for t in ranked[keep:]]
        if keep == 0:
            self._new_bracket()
        else:
            self.rung += 1
            self.members, self.started, self.results = ranked[:keep], [], {}
        return decided

    def _new_bracket(self) -> None:
        self.rung, self.members, self.started, self.results = 0, [], [], {}
        self.bracket_size = self.eta ** (len(self.rung_epochs) - 1)
        self.brackets += 1

    def state_dict(self) -> dict[str, Any]:
        return {"rung": self.rung, "members": self.members, "started": self.started, "bracket_size": self.bracket_size,
                "results": [[t, r] for t, r in self.results.items()], "brackets": self.brackets}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rung, self.members, self.started = state["rung"], list(state["members"]), list(state["started"])
        self.bracket_size, self.brackets = state["bracket_size"], state["brackets"]
        self.results = {int(t): r for t, r in state["results"]}
