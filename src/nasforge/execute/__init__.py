"""Executors behind one interface (base.py): where and when candidates are evaluated."""

from .base import Executor, SerialExecutor

__all__ = ["Executor", "SerialExecutor"]
