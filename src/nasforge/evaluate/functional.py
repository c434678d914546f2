"""The user's own training: `evaluate(model, ctx)` trains the candidate its own way and returns its score.

    def evaluate(model, ctx):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        for epoch in range(1, ctx.epochs + 1):
            model.train()
            for x, y in ctx.train:                       # one epoch, a new seeded order each time
                loss = focal_loss(model(x), y)
                opt.zero_grad(); loss.backward(); opt.step()
            auc = my_auc(model, ctx.val)
            ctx.report(epoch, {"auc": auc})              # learning curve; may stop the trial (pruned)
        return auc                                       # or a dict of metrics

    nasforge.search(data=(x, y), evaluate=evaluate, trials=20)

The function gets a freshly built network of the trial's genome, already on `ctx.device` (and
already holding its parent's or its own earlier weights when the study warm-starts it), and trains it
in place: the study keeps its weights, so the returned model, the final retrain (the function is
called again with `ctx.phase == "retrain"`), `show`, `report` and `export` work as with the built-in
trainer. It returns a number (the score, maximised unless `reward_direction: min`) or a dict of numbers
(the reward is `score`, or the metric a named reward reads, e.g. `auc` for `reward: auc`).

`ctx.report(epoch, metrics)` records one point of the learning curve (the reward's value becomes
`val_score`, which median stopping compares) and calls epoch callbacks; when the study's median rule
or a budget says stop, it raises `nasforge.TrialPruned`, which the function must let through (the
trial is recorded as pruned with its last reported score). Successive halving passes each rung's
epochs as `ctx.epochs` and continues from the rung before's weights. An exception from the function
fails the trial with its message; the search goes on. The validation and test scores of the returned
model are the task's built-in metrics (evaluate/metrics.py).

The function must pickle (a module-level function) to run under the pool or Ray executors.
"""

from __future__ import annotations

import contextlib
import math
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import torch

from ..callbacks import epoch_reporter
from ..data.batches import Batches
from ..errors import TrialFailure, TrialPruned
from ..space.base import Genome
from .accelerator import DeviceRun, backward_step, place
from .cost import materialize
from .losses import make_optimizer
from .metrics import ALL_TASKS, CustomMetric, Reward
from .trainer import TrainingOptions, TrainingOutcome, resolve_device, score_batches
from .training import TrainingEvaluator

EvaluateFn = Callable[[torch.nn.Module, "Context"], Any]


class Split:
    """One split as the function sees it: `for x, y in ctx.train` is one pass (an epoch) over it,
    in a new seeded order each pass for the training split; `len()` is its sample count."""

    def __init__(self, batches: Batches):
        self.batches = batches

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.batches.epoch()

    def __len__(self) -> int:
        return len(self.batches)


class Context:
    """What `evaluate(model, ctx)` is given; see the module docstring."""

    def __init__(self, evaluator: FunctionalEvaluator, options: TrainingOptions, run: DeviceRun, seed: int, epochs: int,
                 genome: Genome, trial: int | None, prune_below: dict[int, float] | None, phase: str, train_split: str):
        self._evaluator, self.options, self._run = evaluator, options, run
        self.data = evaluator.data  # Dataset (tensors) or StreamedDataset (batches only)
        self.task = evaluator.task
        self.device, self.seed, self.epochs, self.genome, self.trial, self.phase = run.device, seed, epochs, genome, trial, phase
        # "32", "bf16" or "16-mixed" (training.precision): ctx.autocast() and ctx.backward_step() apply it.
        self.precision = run.precision
        self._scaler = run.scaler()
        self.batch_size = options.batch_size
        self.curve: list[dict[str, float]] = []
        self._prune_below = prune_below or {}
        self._on_epoch = epoch_reporter(evaluator.epoch_callbacks, trial, genome, seed)
        self._open: list[Batches] = []
        self.train = self.split(train_split, shuffle=True)
        self.val = self.split("val")

    # -- data ------------------------------------------------------------------------------------------
    def split(self, name: str, batch_size: int | None = None, shuffle: bool = False) -> Split:
        """Batches of "train", "val" (or "train+val") on the device; the test split is never given out."""
        if name not in ("train", "val", "train+val"):
            raise ValueError(f"split {name!r}: the function may read 'train', 'val' or 'train+val'; the test split is scored "
                             "once, by nasforge, for the returned model")
        options = replace(self.options, batch_size=batch_size or self.options.batch_size)
        batches = self._evaluator._batches(name, options, self.device, self.seed if shuffle else None)
        self._open.append(batches)
        return Split(batches)

    def tensors(self, name: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) of "train" or "val" as tensors, for data held in memory (streamed data has none)."""
        if not hasattr(self.data, "x_train"):
            raise TrialFailure("this data is streamed: it has no tensors; iterate ctx.train / ctx.val instead")
        if name not in ("train", "val"):
            raise ValueError(f"tensors({name!r}): 'train' or 'val'")
        return getattr(self.data, f"x_{name}"), getattr(self.data, f"y_{name}")

    # -- the study's defaults ------------------------------------------------------------------------------
    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The configured loss for the task (cross-entropy, binary cross-entropy, MSE on standardised targets, ...)."""
        return self._evaluator.task.loss(self.options.loss, self.options.label_smoothing)(outputs, targets)

    def optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        """The configured optimizer (lr, weight decay, momentum) over the model's parameters."""
        o = self.options
        return make_optimizer(o.optimizer, model.parameters(), o.lr, o.weight_decay, o.momentum, o.nesterov)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Wrap the forward pass and the loss in it: autocast to the configured precision (bf16 /
        16-mixed), nothing for 32."""
        return self._run.autocast()

    def backward_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """`loss.backward(); optimizer.step()`, with gradient scaling under 16-mixed (which needs it)."""
        backward_step(loss, optimizer, self._scaler)

    def score(self, model: torch.nn.Module, split: str = "val") -> dict[str, Any]:
        """The task's built-in metrics of `model` on "val" (or "train")."""
        if split not in ("train", "val"):
            raise ValueError(f"score({split!r}): 'train' or 'val'")
        ev = self._evaluator
        batches = ev._batches(split if split == "train" else "val", self.options, self.device)
        try:
            return score_batches(model, batches, ev.task, ev.builtin_reward, ev.metric, self.options.loss, self._run)
        finally:
            batches.close()

    # -- the learning curve ------------------------------------------------------------------------------
    def report(self, epoch: int, metrics: float | dict[str, float]) -> None:
        """Record epoch `epoch`'s metrics; raises TrialPruned when the study stops this trial here."""
        values = self._evaluator.numbers(metrics, f"ctx.report({epoch}, ...)")
        point: dict[str, float] = {"epoch": int(epoch), **values}
        reward = self._evaluator.reward_spec
        if reward.key in values:
            point["val_score"] = reward(values)
        self.curve.append(point)
        if self._on_epoch is not None:
            self._on_epoch(int(epoch), point)
        if self.phase == "search" and epoch in self._prune_below and "val_score" in point \
                and point["val_score"] < self._prune_below[epoch]:
            raise TrialPruned(f"stopped at epoch {epoch}: validation {reward.name} {point['val_score']:.4f} below the median "
                              f"{self._prune_below[epoch]:.4f} of earlier trials")

    def close(self) -> None:
        for batches in self._open:
            batches.close()


class FunctionalEvaluator(TrainingEvaluator):
    """Runs `fn(model, ctx)` in place of the built-in training loop; everything around it (building the
    candidate, cost measures, constraints, warm starts, failures, the final model) is the trainer's."""

    def __init__(self, space: Any, data: Any, fn: EvaluateFn, training: TrainingOptions, reward: str | CustomMetric = "auto",
                 direction: str = "max", **options: Any):
        if not callable(fn):
            raise TypeError(f"evaluate must be a function (model, ctx) -> score, got {type(fn).__name__}")
        if options.get("folds"):
            raise ValueError("cross-validation folds need the built-in trainer; the function trains one network")
        if isinstance(reward, CustomMetric) or reward == "custom":
            raise ValueError("a metric callable scores the built-in trainer's networks; the evaluate function returns its "
                             "own score (return a dict to record several metrics)")
        # A named reward reads its metric from what the function returns; "auto" reads `score`. The
        # returned model's validation / test scores are the task's built-in metrics.
        super().__init__(space, data, training, reward, **options)
        self.fn = fn
        self.builtin_reward = self.reward_spec
        if reward == "auto":
            self.reward_spec = Reward("score", "score", 1 if direction == "max" else -1, ALL_TASKS)
        self.reward = self.reward_spec.name

    def numbers(self, metrics: Any, where: str) -> dict[str, float]:
        """A score or dict of scores as {name: float}; TrialFailure naming what is wrong."""
        if isinstance(metrics, dict):
            out = {}
            for k, v in metrics.items():
                try:
                    out[str(k)] = float(v)
                except (TypeError, ValueError):
                    raise TrialFailure(f"{where}: metric {k!r} is {type(v).__name__}, not a number") from None
            return out
        try:
            return {"score": float(metrics)}
        except (TypeError, ValueError):
            raise TrialFailure(f"{where}: expected a number or a dict of numbers, got {type(metrics).__name__}") from None

    def _train(self, model: torch.nn.Module, genome: Genome, options: TrainingOptions, seed: int, epochs: int | None,
               run: DeviceRun, prune_below: dict[int, float] | None, trial: int | None) -> TrainingOutcome:
        outcome = TrainingOutcome()
        ctx = Context(self, options, run, seed, epochs or options.epochs, genome, trial, prune_below, "search", "train")
        start = time.perf_counter()
        try:
            returned = self._call(model, ctx)
        except TrialPruned as exc:
            exc.curve = ctx.curve
            raise
        finally:
            ctx.close()
        outcome.seconds = time.perf_counter() - start
        outcome.curve = ctx.curve
        values = self.numbers(returned, "evaluate() returned")
        if self.reward_spec.key not in values:
            raise TrialFailure(f"evaluate() returned {sorted(values)}; the reward {self.reward_spec.name!r} needs "
                               f"{self.reward_spec.key!r} among them (or return a single number)")
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if self.reward_spec.key in bad:
            raise TrialFailure(f"evaluate() returned {self.reward_spec.key}={values[self.reward_spec.key]}")
        outcome.val_metrics = values
        return outcome

    def _call(self, model: torch.nn.Module, ctx: Context) -> Any:
        try:
            return self.fn(model, ctx)
        except (TrialPruned, TrialFailure, torch.OutOfMemoryError, MemoryError):
            raise
        except Exception as exc:  # the user's code: any error fails this trial, with its message and where
            where = traceback.extract_tb(exc.__traceback__)[-1]
            raise TrialFailure(f"evaluate raised {type(exc).__name__}: {exc} ({where.filename}:{where.lineno})") from exc

    def _partial_metrics(self, model: torch.nn.Module, pruned: TrialPruned) -> dict[str, Any]:
        last = pruned.curve[-1] if pruned.curve else {}
        return {k: v for k, v in last.items() if k not in ("epoch", "val_score")}

    def retrain(self, model: torch.nn.Module, seed: int, epochs: int, genome: Genome | None = None,
                with_validation: bool = False) -> None:
        """The function again, on a fresh network, for `epochs` (`ctx.phase` "retrain"; `ctx.train` is the
        training and validation splits together with `with_validation`). What it returns is not used."""
        options = self._options(genome)[0] if genome is not None else self.training
        run = place(materialize(model, self.data.inputs(1)), resolve_device(options.device), options.precision,
                    options.channels_last)
        ctx = Context(self, options, run, seed, epochs, genome, None, None, "retrain",
                      "train+val" if with_validation else "train")
        try:
            self._call(model, ctx)
        finally:
            ctx.close()
        model.cpu()


__all__ = ["Context", "FunctionalEvaluator", "Split"]
