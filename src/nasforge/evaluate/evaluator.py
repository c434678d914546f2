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

from ..callbacks import epoch_reporter
from ..data.batches import Batches, TensorBatches
from ..errors import InvalidGenome, TrialFailure, TrialPruned
from ..space.base import Genome, SearchSpace
from .accelerator import DeviceRun, PeakMemory, has_conv2d, is_out_of_memory, place, release_device_memory, run_compiled
from .constraints import Constraint, Scalarization, scalarize, violation
from .cost import DEFAULT_COSTS, GENOME_MEASURES, MEASURES, CostOptions, count_params, genome_measures, materialize, measure_costs
from .crossval import summarize
from .footprint import check as check_footprint
from .inherit import inherit
from .metrics import REWARDS, CustomMetric
from .proxies import score_proxies
from .tasks import Task
from .trainer import TrainingOptions, TrainingOutcome, model_device, resolve_device, score_batches, train_batches


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


# Samples per batch when an in-memory split is scored (streamed splits use the training batch size).
SCORE_BATCH = 1024


class TrainingEvaluator(Evaluator):
    """Builds the candidate, trains it on the training split, scores it on the validation split;
    with `folds` (crossval.extra_folds), also trains it on each further fold and scores it by the mean.

    `data` is an in-memory Dataset (tensor batches) or a StreamedDataset (DataLoader batches); the
    task, loss and optimizer follow the data and `training`; `reward` is a name ("auto": the task's
    default, see metrics.REWARDS) or the user's CustomMetric."""

    inherits_weights = True
    takes_trial_id = True

    def __init__(self, space: SearchSpace, data: Any, training: TrainingOptions, reward: str | CustomMetric = "auto",
                 proxies: bool = False, costs: CostOptions | None = DEFAULT_COSTS, constraints: tuple[Constraint, ...] = (),
                 scalarization: Scalarization | None = None, folds: Sequence[tuple[torch.Tensor, torch.Tensor]] = (),
                 epoch_callbacks: Sequence[Any] = ()):
        self.space, self.data, self.training = space, data, training
        self.task = Task.of(data)
        self.metric = reward if isinstance(reward, CustomMetric) else None
        self.reward_spec = self.task.reward(reward)  # ValueError: unknown, or not for this task
        self.reward = self.reward_spec.name
        self.task.loss(training.loss, training.label_smoothing)  # ValueError: a loss for another task
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
        self.epoch_callbacks = tuple(epoch_callbacks)

    @property
    def epochs(self) -> int | None:
        return self.training.epochs

    @property
    def wants_gpu(self) -> bool:
        if self.training.device.startswith("cuda:") or self.training.device == "mps":
            return False
        return self.training.device != "cpu" or (self.costs is not None and self.costs.device == "cuda")

    @property
    def reward_name(self) -> str:
        return self.reward

    def stop_after(self) -> float | None:
        return hard_limit(self.training.time_limit, 1 + len(self.folds))

    def _reward(self, metrics: dict[str, Any]) -> float:
        return float(scalarize(self.scalarization, self.reward_spec(metrics), metrics))

    def _batches(self, split: str, options: TrainingOptions, device: torch.device, seed: int | None = None) -> Batches:
        streamed = not hasattr(self.data, "x_train")
        size = options.batch_size if split in ("train", "train+val") or streamed else SCORE_BATCH
        if split == "train+val" and not streamed:
            return TensorBatches(*self._pool(), size, device, seed)
        return self.data.batches(split, size, device, seed)

    def _score(self, model: torch.nn.Module, split: str, options: TrainingOptions | None = None,
               run: DeviceRun | None = None) -> dict[str, Any]:
        options = options or self.training
        run = run or DeviceRun(model_device(model), options.precision, options.channels_last and has_conv2d(model))
        return score_batches(model, self._batches(split, options, run.device), self.task, self.reward_spec,
                             self.metric, options.loss, run)

    def reward_of(self, metrics: dict[str, Any]) -> float:
        return self._reward(metrics)

    def evaluate(self, genome: Genome, seed: int, epochs: int | None = None, warmstart: Warmstart | None = None,
                 prune_below: dict[int, float] | None = None, trial: int | None = None) -> Result:
        # Out here, the failed candidate's frames (its network, activations, optimizer) are gone:
        # only now can its memory be handed back.
        return released(self._evaluate(genome, seed, epochs, warmstart, prune_below, trial))

    def _evaluate(self, genome: Genome, seed: int, epochs: int | None, warmstart: Warmstart | None,
                  prune_below: dict[int, float] | None, trial: int | None) -> Result:
        start = time.perf_counter()
        params = None
        metrics: dict[str, Any] = {}
        model = None
        try:
            options, hp_epochs = self._options(genome)
            # Where the trial runs, in what precision, and (CUDA) its peak memory, whatever its outcome.
            device = resolve_device(options.device)
            peak = PeakMemory(device)
            metrics.update(DeviceRun(device, options.precision).describe(), peak_memory_mb=None)
            # Before anything is allocated: a candidate too large for the memory is a failed trial.
            footprint, too_large = check_footprint(self.space, genome, self.data.inputs(1), options.batch_size,
                                                   options.memory_limit, device)
            if too_large is not None:
                return Result("failed", metrics=metrics, params=footprint.params, train_seconds=time.perf_counter() - start,
                              error=too_large)
            # Seeded here, not only in train(): otherwise the initial weights depend on whatever
            # this process drew before, and a trial differs between workers, executors and resumes.
            torch.manual_seed(seed)
            model = materialize(self.space.build(genome), self.data.inputs(1))
            params = count_params(model)
            metrics["params"] = params
            if self.cost_measures:
                costs = self.costs or DEFAULT_COSTS
                metrics.update(measure_costs(model, self.data.inputs(costs.batch_size), costs, self.cost_measures))
            metrics.update(genome_measures(self.space, genome, self.genome_measures))
            # The last line of defence: strategies draw feasible candidates (strategy/feasible.py),
            # but one that gets through anyway (a policy's sample, a noisy latency) is never trained.
            reason = violation(self.constraints, metrics)
            if reason is not None:
                return Result("failed", metrics=metrics, params=params, train_seconds=time.perf_counter() - start,
                              error=f"infeasible, not trained: {reason}")
            if self.proxies:
                metrics.update(score_proxies(model, self.data.inputs(128)))
            if warmstart is not None:
                if warmstart.parent is None:
                    model.load_state_dict(warmstart.state_dict)  # the same candidate, trained further
                else:
                    metrics.update(inherit(self.space, model, genome, warmstart.parent, warmstart.state_dict).as_metrics())
            run = place(model, device, options.precision, options.channels_last)
            outcome = self._train(model, genome, options, seed, epochs or hp_epochs, run, prune_below, trial)
            metrics.update(outcome.val_metrics or self._score(model, "val", options, run))
            if self.folds:
                scores = [dict(metrics)]
                for rows, held in self.folds:
                    scores.append(self._fold(genome, options, seed, epochs or hp_epochs, rows, held))
                    outcome.seconds += scores[-1].pop("seconds")
                metrics.update(summarize(scores))
            metrics["peak_memory_mb"] = peak.mb()
            reward = self._reward(metrics)
        except TrialPruned as exc:
            seconds = time.perf_counter() - start
            metrics["peak_memory_mb"] = peak.mb()
            if exc.diverged:
                return Result("pruned", metrics=metrics, params=params, train_seconds=seconds, curve=exc.curve, error=str(exc))
            # Stopped by the median rule: the partial model still has an honest validation score.
            try:
                metrics.update(self._partial_metrics(model, exc))
                partial = self._reward(metrics)
            except CANDIDATE_ERRORS as inner:
                return failed(inner, params, start, metrics)
            return Result("pruned", reward=partial, metrics=metrics, params=params, train_seconds=seconds, curve=exc.curve,
                          error=str(exc))
        except CANDIDATE_ERRORS as exc:
            del model
            if "device" in metrics:
                metrics["peak_memory_mb"] = peak.mb()
            return failed(exc, params, start, metrics)
        return Result(
            "complete",
            reward=reward,
            metrics=metrics,
            params=params,
            train_seconds=outcome.seconds,
            curve=outcome.curve,
            state_dict={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        )

    def _train(self, model: torch.nn.Module, genome: Genome, options: TrainingOptions, seed: int, epochs: int | None,
               run: DeviceRun, prune_below: dict[int, float] | None, trial: int | None) -> TrainingOutcome:
        train, val = self._batches("train", options, run.device, seed), self._batches("val", options, run.device)
        try:
            return train_batches(model, train, options, seed, self.task, epochs=epochs, validation=val, prune_below=prune_below,
                                 augment=self.data.augment, reward=self.reward_spec, metric=self.metric,
                                 on_epoch=epoch_reporter(self.epoch_callbacks, trial, genome, seed), run=run)
        finally:
            train.close()
            val.close()

    def _partial_metrics(self, model: torch.nn.Module, pruned: TrialPruned) -> dict[str, Any]:
        """Validation metrics of a candidate stopped early by the median rule."""
        return self._score(model, "val")

    def _fold(self, genome: Genome, options: TrainingOptions, seed: int, epochs: int | None,
              rows: torch.Tensor, held: torch.Tensor) -> dict[str, Any]:
        """Scores (and training seconds) of a fresh copy of the candidate on one further fold."""
        x, y = self._pool()
        torch.manual_seed(seed)
        model = materialize(self.space.build(genome), x)
        run = place(model, resolve_device(options.device), options.precision, options.channels_last)
        outcome = train_batches(model, TensorBatches(x[rows], y[rows], options.batch_size, run.device, seed), options, seed,
                                self.task, epochs=epochs, augment=self.data.augment, run=run)
        held_out = TensorBatches(x[held], y[held], SCORE_BATCH, run.device)
        return {**score_batches(model, held_out, self.task, self.reward_spec, self.metric, options.loss, run),
                "seconds": outcome.seconds}

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
        run = place(materialize(model, self.data.inputs(1)), resolve_device(training.device), training.precision,
                    training.channels_last)

        def fit(net: torch.nn.Module) -> None:
            # Batches of their own per run: an eager run after a failed compile draws the same order.
            batches = self._batches("train+val" if with_validation else "train", training, run.device, seed)
            try:
                train_batches(net, batches, training, seed, self.task, epochs=epochs, augment=self.data.augment, run=run)
            finally:
                batches.close()

        if training.final_compile:
            run_compiled(model, fit)
        else:
            fit(model)
        model.cpu()

    def validate(self, model: torch.nn.Module) -> dict[str, Any]:
        """Score on the validation split (the split the search selected on)."""
        return self._final_score(model, "val")

    def test(self, model: torch.nn.Module) -> dict[str, Any]:
        """Score on the test split: called once, for the final model, never for selection."""
        return self._final_score(model, "test")

    def _final_score(self, model: torch.nn.Module, split: str) -> dict[str, Any]:
        # The returned model is scored where it was trained; the user's metric failing here is
        # recorded with the final model instead of losing the finished search.
        options = self.training
        run = place(model, resolve_device(options.device), options.precision, options.channels_last)
        try:
            return self._score(model, split, options, run)
        except TrialFailure as exc:
            return {"error": str(exc)}
        finally:
            model.cpu()
