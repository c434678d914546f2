"""The evaluator contract: an Evaluator turns a genome into a Result. The study never trains; the
evaluator never chooses.

`Evaluator` declares everything the study calls (evaluate, and around it retrain, validate, test,
the time limit, whether weights can be inherited), with defaults; `Result` and `Warmstart` are what
crosses between them, and `failed` / `released` how a failing candidate becomes a failed trial.
The built-in evaluator that trains every candidate is training.py; others: functional.py (the
user's training function), language_model.py, tabular.py (benchmark table look-ups).
"""

from __future__ import annotations

import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import InvalidGenome, TrialFailure
from ..space.base import Genome
from .accelerator import is_out_of_memory, release_device_memory
from .metrics import REWARDS


@dataclass
class Result:
    status: str  # "complete" | "failed" | "pruned" (stopped early; reward is the partial score, None if diverged)
    reward: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    params: int | None = None
    train_seconds: float = 0.0
    curve: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None
    # What the evaluation cost in the evaluator's own unit (simulated seconds for table look-ups).
    cost: float | None = None
    # Trained weights; kept in memory only, the study decides what to persist.
    state_dict: dict[str, torch.Tensor] | None = field(default=None, repr=False)


@dataclass
class Warmstart:
    """Weights a candidate starts from: its parent's (inheritance, `parent` is the parent genome)
    or its own from a lower fidelity (`parent` None: every tensor is loaded as it is)."""

    state_dict: dict[str, torch.Tensor] = field(repr=False)
    parent: Genome | None = None


# What one candidate may raise without it being nasforge's fault: recorded, never fatal.
CANDIDATE_ERRORS = (TrialFailure, InvalidGenome, MemoryError, RuntimeError, ValueError)


def failed(exc: BaseException, params: int | None, start: float, metrics: dict[str, Any] | None = None) -> Result:
    """The 'failed' Result for an error in CANDIDATE_ERRORS raised `start` (perf_counter) ago, with the
    `metrics` known by then (cost measures, device, precision, peak memory). A caller that gets an
    out-of-memory failure hands the memory back once the exception is gone (`released`)."""
    if isinstance(exc, (TrialFailure, InvalidGenome)):
        error = str(exc)
    elif isinstance(exc, MemoryError):
        error = "out of memory"
    elif is_out_of_memory(exc):
        # The candidate is too big for the device: failed, and the search goes on with its memory freed.
        error = OUT_OF_DEVICE_MEMORY + (str(exc).strip().splitlines() or [""])[0][:300]
    else:  # shape mismatches and other per-candidate errors from inside torch
        error = traceback.format_exception_only(type(exc), exc)[-1].strip()[:2000]
    return Result("failed", metrics=dict(metrics or {}), params=params, train_seconds=time.perf_counter() - start, error=error)


OUT_OF_DEVICE_MEMORY = "out of device memory: "


def released(result: Result) -> Result:
    """`result`, after handing back the memory of a candidate that ran out of it (host or device);
    call it where the failed evaluation's frames are gone."""
    if result.status == "failed" and result.error and result.error.startswith((OUT_OF_DEVICE_MEMORY, "out of memory")):
        release_device_memory()
    return result


class Evaluator(ABC):
    """How a candidate is scored. `evaluate` is the one method to write; the rest is what the study
    calls around it, with defaults that let an evaluator implementing `evaluate` alone run a whole
    search (no final retrain, no validation / test scores of the returned model)."""

    # Whether evaluate() maps a parent's weights onto a different child (Warmstart with a parent
    # genome), so that weight inheritance can be on; otherwise a warm start only continues training.
    inherits_weights = False
    # Whether evaluate() needs state of this process (a supernet's shared weights), so that trials
    # cannot run in worker processes.
    serial_only = False
    # Called after every epoch of every trial, in the process that trains it (a pool or Ray worker
    # under those executors), with an EpochInfo; evaluators that train set them (callbacks.py).
    epoch_callbacks: tuple[Any, ...] = ()
    # Whether evaluate() takes the trial's id as `trial` (for EpochInfo and ctx.trial); the study
    # passes it only then, so evaluators written before it need not accept it.
    takes_trial_id = False

    def prepare(self, run_dir: str | Path | None = None, log: Callable[[str], None] | None = None) -> None:  # noqa: B027
        """Set up before the first evaluation (one-shot: train the supernet, or resume its training
        from the checkpoint in `run_dir`); called by the study at the start of every run."""

    def reward_of(self, metrics: dict[str, Any]) -> float:
        """The reward of validation metrics (finalize picks among retrained candidates by it); accuracy by default."""
        return float(REWARDS["accuracy"](metrics))

    @property
    def wants_gpu(self) -> bool:
        """Whether each executor worker should be given a GPU of its own, when there are GPUs (the pool
        pins worker k to GPU k). True by default (a user's evaluator may use one); False for evaluators
        that train on the CPU, or on one GPU named by its index (cuda:N must stay visible as it is)."""
        return True

    @property
    def epochs(self) -> int | None:
        """Epochs of a full evaluation (what median stopping compares curves over); None where
        evaluation has no epochs (table look-ups, a user function that trains its own way)."""
        return None

    @property
    def reward_name(self) -> str:
        """What `Result.reward` measures, for leaderboards and summaries."""
        return "reward"

    @abstractmethod
    def evaluate(self, genome: Genome, seed: int, epochs: int | None = None, warmstart: Warmstart | None = None,
                 prune_below: dict[int, float] | None = None) -> Result:
        """Train and score one candidate. Never raises for a failing candidate: returns status
        'failed' or 'pruned'. Evaluators that do not train may ignore warmstart and prune_below."""

    @property
    def can_retrain(self) -> bool:
        """Whether `retrain` is implemented (the study's final_epochs needs it)."""
        return type(self).retrain is not Evaluator.retrain

    def retrain(self, model: torch.nn.Module, seed: int, epochs: int, genome: Genome | None = None,
                with_validation: bool = False) -> None:
        """Train the returned network again from scratch for `epochs` (the study's final_epochs);
        `with_validation`: on the training and validation data together (the search is over)."""
        raise NotImplementedError(f"{type(self).__name__} cannot retrain a network (it implements no retrain); "
                                  "drop final_epochs to return the search trial's own weights")

    def fold_scores(self, genome: Genome, seed: int, epochs: int, done: Sequence[dict[str, Any]] = (),
                    on_fold: Callable[[list[dict[str, Any]]], None] | None = None) -> list[dict[str, Any]]:
        """Validation scores of the genome trained from scratch for `epochs` on each further
        cross-validation fold (fold 1, the validation split, is the caller's own retrain), for picking
        among retrained candidates by the mean over folds; none by default (no folds). `done` are the
        scores of the first folds from an interrupted call (not trained again); `on_fold` is given
        the scores so far after each fold, for the caller to keep."""
        return []

    def validate(self, model: torch.nn.Module) -> dict[str, Any]:
        """Scores of the returned model on the data the search selected on; none by default."""
        return {}

    def test(self, model: torch.nn.Module) -> dict[str, Any]:
        """Scores of the returned model on held-out test data, computed once at the end; none by default."""
        return {}

    def stop_after(self) -> float | None:
        """Seconds after which an executor stops an evaluation outright (its worker process ended, the
        trial recorded as failed), whatever it is doing then; None: never. The evaluator's own time
        limit is checked between batches; this one also holds inside a long batch or cost measurement."""
        return None


def hard_limit(time_limit: float | None, runs: int = 1) -> float | None:
    """The outright stop for `runs` trainings of `time_limit` seconds each (cross-validation trains once
    per fold): their sum plus a grace for building, cost measurement and scoring, so that the limit
    checked between batches, with its clearer message, normally comes first."""
    if time_limit is None:
        return None
    soft = time_limit * runs
    return soft + max(5.0, 0.25 * soft)
