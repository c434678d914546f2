"""The median stopping rule (Golovin et al., Google Vizier 2017) as a scheduler around another.

A candidate whose validation score (its reward) after epoch e falls below the median that earlier trials
trained from scratch had after epoch e is stopped there (status 'pruned', its partial score kept).
The thresholds are computed when a candidate starts and travel with its job, so the evaluator
prunes between epochs wherever it runs. Everything else is the inner scheduler's (FIFO or
successive halving).
"""

from __future__ import annotations

import statistics
from typing import Any

from .base import Decided, History, Promotion, Scheduler


class MedianStopping(Scheduler):
    def __init__(self, inner: Scheduler, min_trials: int = 5, epochs: int | None = None):
        if min_trials < 1:
            raise ValueError("min_trials must be >= 1")
        self.inner = inner
        self.min_trials = min_trials  # trials needed at an epoch before the rule applies there
        self.epochs = epochs  # epochs of a full evaluation: longer curves (promotions) are cut there
        self.multi_fidelity = inner.multi_fidelity

    def thresholds(self, history: History) -> dict[int, float]:
        """Median validation score per epoch of earlier trials trained from scratch: `val_score` (the
        reward, as the trainer and `ctx.report` record it; `val_accuracy` in runs from before it)."""
        by_epoch: dict[int, list[float]] = {}
        for t in history.trials():
            if t.status == "running" or "inherited_tensors" in t.metrics:
                continue
            for point in t.curve[: self.epochs or None]:
                value = point.get("val_score", point.get("val_accuracy"))
                if value is not None:
                    by_epoch.setdefault(int(point["epoch"]), []).append(value)
        return {e: float(statistics.median(v)) for e, v in by_epoch.items() if len(v) >= self.min_trials}

    def start(self, trial: int) -> None:
        self.inner.start(trial)

    def job_options(self, history: History) -> dict[str, Any]:
        job = self.inner.job_options(history)
        thresholds = self.thresholds(history)
        return {**job, "prune_below": thresholds} if thresholds else job

    def wants_new(self) -> bool:
        return self.inner.wants_new()

    def next_promotion(self) -> Promotion | None:
        return self.inner.next_promotion()

    def record(self, trial: int, reward: float | None, epochs: int | None) -> list[Decided]:
        return self.inner.record(trial, reward, epochs)

    def close(self) -> list[Decided]:
        return self.inner.close()

    def requeue(self) -> None:
        self.inner.requeue()

    @property
    def protected(self) -> set[int]:
        return self.inner.protected

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)
