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
    """The executor a config names; nothing starts until the first trial is submitted."""
    if config.name == "pool":
        return PoolExecutor(evaluator, workers=config.workers, threads=config.threads)
    if config.name == "ray":
        from .ray import RayExecutor

        return RayExecutor(evaluator, address=config.address, workers=config.workers, cpus_per_trial=config.cpus_per_trial,
                           gpus_per_trial=config.gpus_per_trial, temp_dir=config.ray_temp_dir)
    return SerialExecutor(evaluator)


__all__ = ["EXECUTORS", "LOST", "Executor", "ExecutorError", "PoolExecutor", "SerialExecutor", "lost", "make_executor"]
