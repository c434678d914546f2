"""Evaluators turn a genome into a Result. The study never trains; the evaluator never chooses."""

from __future__ import annotations

import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..data.datasets import Dataset
from ..errors import InvalidGenome, TrialFailure, TrialPruned
from ..space.base import Genome, SearchSpace
from .constraints import Constraint, Scalarization, scalarize, violation
from .cost import DEFAULT_COSTS, GENOME_MEASURES, MEASURES, CostOptions, count_params, genome_measures, measure_costs
from .crossval import summarize
from .inherit import inherit
from .metrics import REWARDS
from .proxies import score_proxies
from .trainer import TrainingOptions, resolve_device, score, train


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


def failed(exc: BaseException, params: int | None, start: float) -> Result:
    """The 'failed' Result for an error in CANDIDATE_ERRORS raised `start` (perf_counter) ago."""
    if isinstance(exc, (TrialFailure, InvalidGenome)):
        error = str(exc)
    elif isinstance(exc, MemoryError):
        error = "out of memory"
    else:  # shape mismatches, CUDA OOM and other per-candidate errors from inside torch
        error = traceback.format_exception_only(type(exc), exc)[-1].strip()[:2000]
    return Result("failed", params=params, train_seconds=time.perf_counter() - start, error=error)


def _joined(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Two splits' inputs as one; token sequences (TextDataset: 0 = padding) padded to one length first."""
    if a.shape[1:] != b.shape[1:]:
        if a.dim() != 2 or a.dtype.is_floating_point:
            raise ValueError(f"cannot join splits of shapes {tuple(a.shape[1:])} and {tuple(b.shape[1:])}")
        width = max(a.shape[1], b.shape[1])
        a, b = (torch.nn.functional.pad(t, (0, width - t.shape[1])) for t in (a, b))
    return torch.cat([a, b])


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

    def prepare(self, run_dir: str | Path | None = None, log: Callable[[str], None] | None = None) -> None:  # noqa: B027
        """Set up before the first evaluation (one-shot: train the supernet, or resume its training
        from the checkpoint in `run_dir`); called by the study at the start of every run."""

    def reward_of(self, metrics: dict[str, Any]) -> float:
        """The reward of a validation score (finalize picks among retrained candidates by it)."""
        return float(REWARDS["accuracy"](metrics))

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

    def validate(self, model: torch.nn.Module) -> dict[str, Any]:
        """Scores of the returned model on the data the search selected on; none by default."""
        return {}

    def test(self, model: torch.nn.Module) -> dict[str, Any]:
        """Scores of the returned model on held-out test data, computed once at the end; none by default."""
        return {}


class TrainingEvaluator(Evaluator):
    """Builds the candidate, trains it on the training split, scores it on the validation split;
    with `folds` (crossval.extra_folds), also trains it on each further fold and scores it by the mean."""

    inherits_weights = True

    def __init__(self, space: SearchSpace, data: Dataset, training: TrainingOptions, reward: str = "accuracy",
                 proxies: bool = False, costs: CostOptions | None = DEFAULT_COSTS, constraints: tuple[Constraint, ...] = (),
                 scalarization: Scalarization | None = None, folds: Sequence[tuple[torch.Tensor, torch.Tensor]] = ()):
        if reward not in REWARDS:
            raise ValueError(f"unknown reward {reward!r}; choose from {sorted(REWARDS)}")
        self.space, self.data, self.training, self.reward = space, data, training, reward
        self.folds = list(folds)  # rows of the pool [x_train; x_val], see _pool()
        self._joined_splits: tuple[torch.Tensor, torch.Tensor] | None = None
        if self.folds:
            # A parent's weights were trained on rows that other folds validate on.
            self.inherits_weights = False
        self.proxies = proxies
        # Cost measures (evaluate/cost.py) are recorded for every trial unless `costs` is None; the
        # ones constraints or the scalarized reward need are measured regardless.
        self.costs, self.constraints, self.scalarization = costs, tuple(constraints), scalarization
        needed = {c.measure for c in self.constraints} | set(scalarization.measures if scalarization else ())
        self.cost_measures = set(MEASURES) if costs is not None else needed & set(MEASURES)
        self.genome_measures = needed & set(GENOME_MEASURES)

    @property
    def epochs(self) -> int | None:
        return self.training.epochs

    @property
    def reward_name(self) -> str:
        return self.reward

    def _reward(self, metrics: dict[str, Any]) -> float:
        return float(scalarize(self.scalarization, float(REWARDS[self.reward](metrics)), metrics))

    def reward_of(self, metrics: dict[str, Any]) -> float:
        return self._reward(metrics)

    def evaluate(self, genome: Genome, seed: int, epochs: int | None = None, warmstart: Warmstart | None = None,
                 prune_below: dict[int, float] | None = None) -> Result:
        start = time.perf_counter()
        params = None
        metrics: dict[str, Any] = {}
        try:
            # Seeded here, not only in train(): otherwise the initial weights depend on whatever
            # this process drew before, and a trial differs between workers, executors and resumes.
            torch.manual_seed(seed)
            model = self.space.build(genome)
            params = count_params(model)
            metrics["params"] = params
            if self.cost_measures:
                options = self.costs or DEFAULT_COSTS
                metrics.update(measure_costs(model, self.data.x_train[: options.batch_size], options, self.cost_measures))
            metrics.update(genome_measures(self.space, genome, self.genome_measures))
            # The last line of defence: strategies draw feasible candidates (strategy/feasible.py),
            # but one that gets through anyway (a policy's sample, a noisy latency) is never trained.
            reason = violation(self.constraints, metrics)
            if reason is not None:
                return Result("failed", metrics=metrics, params=params, train_seconds=time.perf_counter() - start,
                              error=f"infeasible, not trained: {reason}")
            if self.proxies:
                metrics.update(score_proxies(model, self.data.x_train[:128]))
            if warmstart is not None:
                if warmstart.parent is None:
                    model.load_state_dict(warmstart.state_dict)  # the same candidate, trained further
                else:
                    metrics.update(inherit(self.space, model, genome, warmstart.parent, warmstart.state_dict).as_metrics())
            options, hp_epochs = self._options(genome)
            model.to(resolve_device(options.device))
            outcome = train(
                model, self.data.x_train, self.data.y_train, options, seed,
                epochs=epochs or hp_epochs, validation=(self.data.x_val, self.data.y_val), prune_below=prune_below,
                augment=self.data.augment,
            )
            metrics.update(score(model, self.data.x_val, self.data.y_val, self.data.num_classes))
            if self.folds:
                scores = [dict(metrics)]
                for rows, held in self.folds:
                    scores.append(self._fold(genome, options, seed, epochs or hp_epochs, rows, held))
                    outcome.seconds += scores[-1].pop("seconds")
                metrics.update(summarize(scores))
        except TrialPruned as exc:
            seconds = time.perf_counter() - start
            if exc.diverged:
                return Result("pruned", metrics=metrics, params=params, train_seconds=seconds, curve=exc.curve, error=str(exc))
            # Stopped by the median rule: the partial model still has an honest validation score.
            metrics.update(score(model, self.data.x_val, self.data.y_val, self.data.num_classes))
            return Result("pruned", reward=self._reward(metrics), metrics=metrics, params=params,
                          train_seconds=seconds, curve=exc.curve, error=str(exc))
        except CANDIDATE_ERRORS as exc:
            return failed(exc, params, start)
        return Result(
            "complete",
            reward=self._reward(metrics),
            metrics=metrics,
            params=params,
            train_seconds=outcome.seconds,
            curve=outcome.curve,
            state_dict={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        )

    def _fold(self, genome: Genome, options: TrainingOptions, seed: int, epochs: int | None,
              rows: torch.Tensor, held: torch.Tensor) -> dict[str, Any]:
        """Scores (and training seconds) of a fresh copy of the candidate on one further fold."""
        x, y = self._pool()
        torch.manual_seed(seed)
        model = self.space.build(genome).to(resolve_device(options.device))
        outcome = train(model, x[rows], y[rows], options, seed, epochs=epochs, augment=self.data.augment)
        return {**score(model, x[held], y[held], self.data.num_classes), "seconds": outcome.seconds}

    def _pool(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The training and validation splits as one, joined once: cross-validation folds index into it
        and a train+val retrain trains on it."""
        if self._joined_splits is None:
            self._joined_splits = (_joined(self.data.x_train, self.data.x_val), torch.cat([self.data.y_train, self.data.y_val]))
        return self._joined_splits

    def _options(self, genome: Genome) -> tuple[TrainingOptions, int | None]:
        """Training options with the genome's own hyper-parameters applied, and its epochs if it has them."""
        overrides = self.space.training_overrides(genome)
        if not overrides:
            return self.training, None
        changes = {k: v for k, v in overrides.items() if k in ("lr", "weight_decay")}
        if "batch_size" in overrides:
            changes["batch_size"] = int(overrides["batch_size"])
        hp_epochs = int(overrides["epochs"]) if "epochs" in overrides else None
        return replace(self.training, **changes), hp_epochs

    def retrain(self, model: torch.nn.Module, seed: int, epochs: int, genome: Genome | None = None,
                with_validation: bool = False) -> None:
        """Train the returned genome again from scratch (the study's final_epochs), with the
        genome's own lr / weight decay / batch size when it carries them, as in the search;
        `with_validation`: on the training and validation splits together (the search is over)."""
        training = self._options(genome)[0] if genome is not None else self.training
        x, y = self._pool() if with_validation else (self.data.x_train, self.data.y_train)
        model.to(resolve_device(training.device))
        train(model, x, y, training, seed, epochs=epochs, augment=self.data.augment)
        model.cpu()

    def validate(self, model: torch.nn.Module) -> dict[str, Any]:
        """Score on the validation split (the split the search selected on)."""
        return score(model, self.data.x_val, self.data.y_val, self.data.num_classes)

    def test(self, model: torch.nn.Module) -> dict[str, Any]:
        """Score on the test split: called once, for the final model, never for selection."""
        return score(model, self.data.x_test, self.data.y_test, self.data.num_classes)
