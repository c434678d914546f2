"""Executors behind one interface (base.py): where and when candidates are evaluated.

serial: in this process, one at a time. pool (pool.py): persistent local worker processes.
ray (ray.py): Ray tasks on a cluster or a local Ray; imported only when chosen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..evaluate.evaluator import Evaluator
from .base import LOST, Executor, ExecutorError, SerialExecutor, lost
from .pool import PoolExecutor

if TYPE_CHECKING:
    from ..config import ExecutorConfig

EXECUTORS = ("serial", "pool", "ray")


def make_executor(config: ExecutorConfig, evaluator: Evaluator) -> Executor:
    """The executor a config names; nothing starts until the first trial is submitted.

    An evaluator with a hard time limit (`stop_after`, from trial_timeout) needs its candidates in a
    process that can be stopped: a Python thread cannot be interrupted inside one long torch call (a
    batch of a huge network, a cost measurement). So the serial executor is then a pool of one
    worker with this process's thread count: one candidate at a time, as before, at the price of
    starting one worker process and sending the data to it once (benchmarks/isolation_overhead.py)."""
    limit = evaluator.stop_after() if evaluator is not None else None
    if config.name == "pool":
        return PoolExecutor(evaluator, workers=config.workers, threads=config.threads, time_limit=limit)
    if config.name == "ray":
        from .ray import RayExecutor

        return RayExecutor(evaluator, address=config.address, workers=config.workers, cpus_per_trial=config.cpus_per_trial,
                           gpus_per_trial=config.gpus_per_trial, temp_dir=config.ray_temp_dir)
    if limit is not None:
        import torch

        return PoolExecutor(evaluator, workers=1, threads=torch.get_num_threads(), time_limit=limit)
    return SerialExecutor(evaluator)


__all__ = ["EXECUTORS", "LOST", "Executor", "ExecutorError", "PoolExecutor", "SerialExecutor", "lost", "make_executor"]
