"""Executors decide where and when a candidate is evaluated; they know nothing of strategies."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from ..errors import NasforgeError
from ..evaluate.evaluator import Evaluator, Result
from ..space.base import Genome


class ExecutorError(NasforgeError):
    """An executor cannot run: a missing optional dependency, a cluster that cannot be reached,
    workers that cannot start. The message names the fix."""

#: Status of a Result whose evaluation never ended because its worker died (killed, out of memory,
#: node lost). Never stored: the study runs the trial again or records it as failed.
LOST = "lost"


def lost(reason: str) -> Result:
    return Result(LOST, error=reason)


class Executor(ABC):
    #: How many candidates may be out at once.
    capacity: int = 1

    @classmethod
    def from_config(cls, evaluator: Evaluator, config: Any) -> Executor:
        """The executor the config's `executor:` section (config.ExecutorConfig) describes. Executors
        with options of their own read them from `config`; the default takes none."""
        return cls(evaluator)  # type: ignore[call-arg]  # every executor's __init__ takes the evaluator; this ABC declares none

    @abstractmethod
    def submit(self, trial_id: int, genome: Genome, seed: int, **options: Any) -> None:
        """Queue one evaluation; `options` (epochs, warmstart, prune_below) go to Evaluator.evaluate."""

    @abstractmethod
    def next_result(self) -> tuple[int, Result]:
        """Block until some submitted evaluation ends; return its trial id and result."""

    def close(self) -> None:  # noqa: B027 - optional: an executor without workers has nothing to stop
        """Stop workers and drop what is still out (the study re-runs it on resume). May be
        called more than once; a later submit starts the executor again."""
