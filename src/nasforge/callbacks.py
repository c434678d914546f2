"""Callbacks: the user's code, run as a search goes (the hooks Lightning and Keras users know).

    class Printer(nasforge.Callback):
        def on_epoch_end(self, info):            # every epoch of every trial
            print(info.trial, info.epoch, info.metrics)
        def on_trial_end(self, study, record):   # every finished trial (complete, pruned or failed)
            print(record.id, record.status, record.reward)

    nasforge.search(..., callbacks=[Printer()])

A plain function `fn(study, record)` in `callbacks` is an `on_trial_end`. Trial and search hooks run
in the process that runs the search, in order, after the trial is stored. `on_epoch_end` runs where
the trial trains: in this process with the serial executor, in the worker process under the pool and
Ray executors (the callback is pickled with the evaluator, so it must pickle, and what it changes
there stays there; a logger that writes files or sends to a server works from any process).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import TrialRecord
    from .study import Study


@dataclass(frozen=True)
class EpochInfo:
    """One epoch of one trial: `metrics` is the learning-curve point (train_loss, val_loss, val_score,
    val_accuracy or val_rmse, ...) or what the user's evaluate function reported."""

    trial: int | None
    genome: Any
    seed: int
    epoch: int
    metrics: dict[str, float] = field(default_factory=dict)


class Callback:
    """Override the hooks you need; every one does nothing by default."""

    def on_trial_start(self, study: Study, trial_id: int, genome: Any) -> None:
        """A trial was handed to the executor (a promotion of successive halving starts again)."""

    def on_epoch_end(self, info: EpochInfo) -> None:
        """An epoch of a trial ended (where the trial trains; see the module docstring)."""

    def on_trial_end(self, study: Study, record: TrialRecord) -> None:
        """A trial finished and is in the store."""

    def on_search_end(self, study: Study) -> None:
        """The search stopped and its final model (study.final) is saved."""

    def __call__(self, study: Study, record: TrialRecord) -> None:
        # The study calls each callback as fn(study, record) when a trial ends.
        self.on_trial_end(study, record)


def wants_epochs(callback: Any) -> bool:
    """Whether a callback overrides on_epoch_end (only those travel with the evaluator)."""
    return isinstance(callback, Callback) and type(callback).on_epoch_end is not Callback.on_epoch_end


def epoch_reporter(callbacks: Sequence[Any], trial: int | None, genome: Any, seed: int
                   ) -> Callable[[int, dict[str, float]], None] | None:
    """The trainer's on_epoch hook calling every callback's on_epoch_end; None without callbacks."""
    if not callbacks:
        return None

    def report(epoch: int, metrics: dict[str, float]) -> None:
        info = EpochInfo(trial, genome, seed, epoch, dict(metrics))
        for callback in callbacks:
            callback.on_epoch_end(info)

    return report
