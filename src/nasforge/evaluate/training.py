"""The built-in evaluator: each candidate built, trained on the training split and scored on the
validation split (with cross-validation folds, trained and scored on each), its cost measures and
constraints checked first; retrains and scores the returned model at the end.

The contract it fulfils (Evaluator, Result, Warmstart) is in evaluator.py; the training loop itself
is trainer.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch

from ..callbacks import epoch_reporter
from ..data.batches import Batches, TensorBatches
from ..errors import TrialFailure, TrialPruned
from ..space.base import Genome, SearchSpace
from .accelerator import DeviceRun, PeakMemory, has_conv2d, place, run_compiled
from .constraints import Constraint, Scalarization, scalarize, violation
from .cost import DEFAULT_COSTS, GENOME_MEASURES, MEASURES, CostOptions, count_params, genome_measures, materialize, measure_costs
from .crossval import summarize
from .evaluator import CANDIDATE_ERRORS, Evaluator, Result, Warmstart, failed, hard_limit, released
from .footprint import check as check_footprint
from .inherit import inherit
from .metrics import CustomMetric
from .proxies import score_proxies
from .tasks import Task
from .trainer import TrainingOptions, TrainingOutcome, model_device, resolve_device, score_batches, train_batches

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
        peak: PeakMemory | None = None
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
                return Result("failed", metrics=metrics, params=footprint.params if footprint is not None else None,
                              train_seconds=time.perf_counter() - start, error=too_large)
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
            # Raised by the training, so the network and the memory meter exist.
            assert model is not None and peak is not None
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
            if peak is not None and "device" in metrics:
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
            self._joined_splits = self.data.joined()
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

    def fold_scores(self, genome: Genome, seed: int, epochs: int, done: Sequence[dict[str, Any]] = (),
                    on_fold: Callable[[list[dict[str, Any]]], None] | None = None) -> list[dict[str, Any]]:
        """Scores of fresh copies of the genome trained for `epochs` on folds 2..K (none without folds),
        the first len(done) of them taken from `done`; `on_fold` gets the scores so far after each."""
        options = self._options(genome)[0]
        scores = list(done)[: len(self.folds)]
        for rows, held in self.folds[len(scores):]:
            score = self._fold(genome, options, seed, epochs, rows, held)
            score.pop("seconds")
            scores.append(score)
            if on_fold is not None:
                on_fold(list(scores))
        return scores

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
