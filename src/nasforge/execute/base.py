"""Executors decide where and when a candidate is evaluated; they know nothing of strategies."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque

from ..evaluate.evaluator import Evaluator, Result
from ..space.base import Genome


class Executor(ABC):
    #: How many candidates may be out at once.
    capacity: int = 1

    @abstractmethod
    def submit(self, trial_id: int, genome: Genome, seed: int) -> None:
        """Queue one evaluation."""

    @abstractmethod
    def next_result(self) -> tuple[int, Result]:
        """Block until some submitted evaluation ends; return its trial id and result."""

    def close(self) -> None:
        pass


class SerialExecutor(Executor):
    """Evaluates in the calling process, one candidate at a time."""

    capacity = 1

    def __init__(self, evaluator: Evaluator):
        self.evaluator = evaluator
        self.queue: deque[tuple[int, Genome, int]] = deque()

    def submit(self, trial_id: int, genome: Genome, seed: int) -> None:
        self.queue.append((trial_id, genome, seed))

    def next_result(self) -> tuple[int, Result]:
        trial_id, genome, seed = self.queue.popleft()
        return trial_id, self.evaluator.evaluate(genome, seed)
