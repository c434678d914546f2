"""The scheduler contract: when to start, continue or stop candidates.

As in Syne Tune, what to try (the strategy), when to stop or continue it (the scheduler) and where
it runs (the executor) are three separate things. The study asks the scheduler whether a new
candidate may start and with which job options (epochs, pruning thresholds), whether a trial it
paused should continue (a promotion), and tells it each result; the scheduler answers which trials'
fates are decided, and only those are told to the strategy. A scheduler never chooses candidates
and never trains. Its state is plain JSON, saved with every trial, so a killed study resumes it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Protocol

from ..store import TrialRecord


@dataclass(frozen=True)
class Promotion:
    """Continue `trial` from its own weights, from `from_epochs` to `to_epochs` of training."""

    trial: int
    from_epochs: int
    to_epochs: int


@dataclass(frozen=True)
class Decided:
    """A candidate whose search is over: report `reward` measured after `epochs` to the strategy."""

    trial: int
    reward: float | None
    epochs: int | None


class History(Protocol):
    """What a scheduler may read of the study's record (the Store)."""

    def trials(self, status: str | None = None) -> list[TrialRecord]: ...


class Scheduler(ABC):
    #: Whether trials run at several fidelities (their metrics then record the one reached).
    multi_fidelity = False

    def wants_new(self) -> bool:
        """Whether a new candidate may start now (False: wait for results already out)."""
        return True

    def next_promotion(self) -> Promotion | None:
        """A paused trial to continue now, if any."""
        return None

    def start(self, trial: int) -> None:  # noqa: B027 - schedulers that track no members keep the default
        """A new candidate joins as `trial` (before the study writes it, so the state saved with
        the trial already counts it)."""

    @abstractmethod
    def job_options(self, history: History) -> dict[str, Any]:
        """Options of a new candidate's evaluation (`epochs`, `prune_below`); empty: the
        evaluator's own budget. Also asked for a candidate run again after a crash."""

    @abstractmethod
    def record(self, trial: int, reward: float | None, epochs: int | None) -> list[Decided]:
        """The result of a job of `trial` (reward None: failed); the trials now decided."""

    def close(self) -> list[Decided]:
        """Nothing more will start (budget spent, or the strategy waits for these very results):
        decide what can be decided with the results in."""
        return []

    def requeue(self) -> None:  # noqa: B027 - optional: schedulers without paused trials have nothing to hand out again
        """After a crash: hand out again what was handed out but never finished."""

    @property
    def protected(self) -> set[int]:
        """Trials whose trained weights the scheduler will need (to continue them)."""
        return set()

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 - stateless schedulers keep the default
        return None


class FIFO(Scheduler):
    """Every candidate trains its full budget once; its result is decided as soon as it is in."""

    def job_options(self, history: History) -> dict[str, Any]:
        return {}

    def record(self, trial: int, reward: float | None, epochs: int | None) -> list[Decided]:
        return [Decided(trial, reward, epochs)]
