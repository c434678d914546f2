"""The serial executor: candidates evaluated in the calling process, one at a time (or, under a hard
time limit, in one worker process that can be stopped: pool.py)."""

from __future__ import annotations

from collections import deque
from typing import Any

from ..evaluate.evaluator import Evaluator, Result
from ..space.base import Genome
from .base import Executor
from .pool import PoolExecutor


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
