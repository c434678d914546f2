"""Executors decide where and when a candidate is evaluated; they know nothing of strategies."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
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


class SerialExecutor(Executor):
    """Evaluates in the calling process, one candidate at a time."""

    capacity = 1

    @classmethod
    def from_config(cls, evaluator: Evaluator, config: Any) -> Executor:
        """An evaluator with a hard time limit (`stop_after`, from trial_timeout) needs its candidates
        in a process that can be stopped: a Python thread cannot be interrupted inside one long torch
        call (a batch of a huge network, a cost measurement). The serial executor is then a pool of one
        worker with this process's thread count: one candidate at a time, as before, for the price of
        starting one worker and sending it the data once (+2 CPU-s a search: benchmarks/performance/
        isolation_overhead.py)."""
        limit = evaluator.stop_after() if evaluator is not None else None
        if limit is None:
            return cls(evaluator)
        import torch

        from .pool import PoolExecutor

        return PoolExecutor(evaluator, workers=1, threads=torch.get_num_threads(), time_limit=limit)

    def __init__(self, evaluator: Evaluator):
        self.evaluator = evaluator
        self.queue: deque[tuple[int, Genome, int, dict[str, Any]]] = deque()

    def submit(self, trial_id: int, genome: Genome, seed: int, **options: Any) -> None:
        self.queue.append((trial_id, genome, seed, options))

    def next_result(self) -> tuple[int, Result]:
        trial_id, genome, seed, options = self.queue.popleft()
        return trial_id, self.evaluator.evaluate(genome, seed, **options)

    def close(self) -> None:
        self.queue.clear()
