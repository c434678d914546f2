"""Schedulers: when to start, continue or stop a candidate (base.py has the contract).

FIFO (base.py): every candidate trains its full budget. SuccessiveHalving (halving.py): many
candidates train briefly, the best continue. MedianStopping (median.py): wraps either and stops
candidates whose learning curve falls below the median of earlier ones.
"""

from __future__ import annotations

from .base import FIFO, Decided, History, Promotion, Scheduler
from .halving import SuccessiveHalving
from .median import MedianStopping


def make_scheduler(fidelity: str = "none", min_epochs: int = 1, eta: int = 3, rungs: int = 3, early_stop: str = "none",
                   early_stop_min_trials: int = 5, epochs: int | None = None) -> Scheduler:
    """The scheduler of a config's `fidelity` and `training.early_stop` fields."""
    scheduler: Scheduler = SuccessiveHalving(min_epochs, eta, rungs) if fidelity == "halving" else FIFO()
    if early_stop == "median":
        scheduler = MedianStopping(scheduler, early_stop_min_trials, epochs)
    return scheduler


__all__ = ["FIFO", "Decided", "History", "MedianStopping", "Promotion", "Scheduler", "SuccessiveHalving", "make_scheduler"]
