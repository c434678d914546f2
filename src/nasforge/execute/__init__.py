"""Executors behind one interface (base.py): where and when candidates are evaluated.

serial (serial.py): in this process, one at a time. pool (pool.py): persistent local worker processes.
ray (ray.py): Ray tasks on a cluster or a local Ray; imported only when chosen. Names come from
the EXECUTORS registry (registry.py); a new executor subclasses Executor and is registered there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..evaluate.evaluator import Evaluator
from ..registry import EXECUTORS
from .base import LOST, Executor, ExecutorError, lost
from .pool import PoolExecutor
from .serial import SerialExecutor

if TYPE_CHECKING:
    from ..config import ExecutorConfig

def make_executor(config: ExecutorConfig, evaluator: Evaluator) -> Executor:
    """The executor a config names (from the EXECUTORS registry); nothing starts until the first
    trial is submitted."""
    factory = EXECUTORS.get_or_error(config.name, "executor.name")
    if isinstance(factory, type) and issubclass(factory, Executor):
        return factory.from_config(evaluator, config)
    executor = factory(evaluator, config)
    if not isinstance(executor, Executor):
        raise ExecutorError(f"executor {config.name!r}: the factory returned {type(executor).__name__}, not an Executor")
    return executor


__all__ = ["EXECUTORS", "LOST", "Executor", "ExecutorError", "PoolExecutor", "SerialExecutor", "lost", "make_executor"]
