"""The built-in training loop, over Batches (batches.py): index slices of in-memory tensors (a small
network trains at the speed of the network) or a streaming DataLoader for data that does not fit.

The loss, the optimizer and the scores follow the task (tasks.py, losses.py): cross-entropy /
binary cross-entropy / MSE by default, or the user's; AdamW or SGD, or the user's factory.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.batches import Batches, TensorBatches
from ..errors import ConfigError, TrialFailure, TrialPruned
from .accelerator import DeviceRun, backward_step, place, scaled_steps
from .losses import make_optimizer
from .metrics import CustomMetric, Reward
from .tasks import Task


@dataclass(frozen=True)
class TrainingOptions:
    epochs: int = 5
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    cosine: bool = True
    # Seconds one candidate may train before it is stopped and recorded as failed.
    time_limit: float | None = None
    # Language models: train each candidate for this many CPU-seconds instead of `epochs` (an
    # equal-time comparison; the step count then depends on the machine).
    cpu_seconds: float | None = None
    # A loss this far above its first-epoch value is treated as divergence.
    divergence_factor: float = 1e3
    # "auto": the GPU this process was given (a pool worker sees only its own), else the CPU.
    device: str = "auto"
    # Classifiers: the training loss spreads this much of each target's probability over all classes
    # (scores and the validation loss stay plain cross-entropy).
    label_smoothing: float = 0.0
    # "auto" (the task's: cross_entropy, bce_with_logits or mse), a name of losses.LOSSES, or a
    # callable (outputs, targets) -> scalar tensor.
    loss: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = "auto"
    # "adamw", "sgd" (with momentum / nesterov) or a factory(params, lr=, weight_decay=) -> Optimizer.
    optimizer: str | Callable[..., torch.optim.Optimizer] = "adamw"
    momentum: float = 0.9
    nesterov: bool = False
    # "32", "bf16" (autocast, CPU and CUDA) or "16-mixed" (float16 autocast + gradient scaling, CUDA);
    # see accelerator.py.
    precision: str = "32"
    # 2-D convolution nets train in NHWC order (weights and batches); others are left as they are.
    channels_last: bool = False
    # The final retrain runs the network through torch.compile (searches never do: a new graph per
    # candidate); it falls back to eager, with a warning, when compiling fails.
    final_compile: bool = False
    # Bytes a candidate's training may plan to use (evaluate/footprint.py); a larger one fails unbuilt.
    # None: half the memory free when the candidate is evaluated.
    memory_limit: float | None = None


# Optimizer steps per epoch the automatic batch size gives at least (training.batch_size: auto): with
# 128 on scikit-learn's digits (1,078 training rows) a 3-epoch candidate took 27 steps and searches
# returned 55% test accuracy; at 32 (102 steps) 98%, in the same time (benchmarks/quality/defaults_fit.py).
MIN_STEPS_PER_EPOCH = 20


def auto_batch_size(n_train: int) -> int:
    """The largest power of two from 16 to 128 that gives MIN_STEPS_PER_EPOCH steps over `n_train` rows."""
    size = 128
    while size > 16 and n_train / size < MIN_STEPS_PER_EPOCH:
        size //= 2
    return size


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def check_device(name: str, where: str = "training.device") -> torch.device:
    """The device `name` names, or a ConfigError when this machine does not have it."""
    try:
        device = resolve_device(name)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"{where}: {name!r} is not a device ({exc})") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{where}: {name!r} asked for, but this machine has no CUDA device (torch {torch.__version__}"
                              f"{', a CPU-only build' if torch.version.cuda is None else ''}); use auto or cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"{where}: {name!r} asked for, but this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"{where}: 'mps' asked for, but this machine has no Apple GPU available to torch")
    return device


def model_device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


@dataclass
class TrainingOutcome:
    curve: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    samples: int = 0
    # Every validation metric of the last epoch (the evaluator's score, not computed twice).
    val_metrics: dict[str, Any] | None = None


@torch.no_grad()
def outputs_of(model: nn.Module, batches: Batches, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
               run: DeviceRun | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """The network's outputs and the targets over a split (in order), and the mean loss; under `run`'s
    precision and memory format. Everything stays on the device until the end: one copy, one sync."""
    model.eval()
    run = run or DeviceRun(model_device(model))
    outs, ys, losses = [], [], []
    for x, y in batches.epoch():
        with run.autocast():
            out = model(run.input(x))
            losses.append(loss(out, y).detach().float() * len(y))
        outs.append(out.detach().float())
        ys.append(y)
    if not outs:
        raise TrialFailure("the split to score is empty")
    y_all = torch.cat(ys)
    return torch.cat(outs).cpu().numpy(), y_all.cpu().numpy(), float(torch.stack(losses).sum()) / max(1, len(y_all))


def score_batches(model: nn.Module, batches: Batches, task: Task, reward: Reward | None = None,
                  metric: CustomMetric | None = None, loss: str | Callable[..., torch.Tensor] = "auto",
                  run: DeviceRun | None = None) -> dict[str, Any]:
    """Every metric of the task on one split (validation or test). The loss is the training loss
    without label smoothing."""
    outputs, y, mean_loss = outputs_of(model, batches, task.loss(loss), run)
    return task.metrics(y, outputs, mean_loss, reward, metric)


def score(model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int, task: Task | None = None,
          reward: Reward | None = None, metric: CustomMetric | None = None, batch_size: int = 1024,
          loss: str | Callable[..., torch.Tensor] = "auto") -> dict[str, Any]:
    """Metrics of a split held as tensors (classification with `num_classes` classes unless `task`)."""
    task = task or Task("classification", num_classes)
    return score_batches(model, TensorBatches(x, y, batch_size, model_device(model)), task, reward, metric, loss)


def train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    options: TrainingOptions,
    seed: int,
    epochs: int | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    validation: tuple[torch.Tensor, torch.Tensor] | None = None,
    prune_below: dict[int, float] | None = None,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    task: Task | None = None,
    reward: Reward | None = None,
    metric: CustomMetric | None = None,
) -> TrainingOutcome:
    """Train in place on tensors (see `train_batches`); classification unless `task` says otherwise."""
    device = model_device(model)
    batches = TensorBatches(x, y, options.batch_size, device, seed=seed)
    held = TensorBatches(*validation, 1024, device) if validation is not None else None
    return train_batches(model, batches, options, seed, task or Task("classification", int(y.max()) + 1 if len(y) else 2),
                         epochs=epochs, on_epoch=on_epoch, validation=held, prune_below=prune_below, augment=augment,
                         reward=reward, metric=metric)


def train_batches(
    model: nn.Module,
    batches: Batches,
    options: TrainingOptions,
    seed: int,
    task: Task,
    epochs: int | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    validation: Batches | None = None,
    prune_below: dict[int, float] | None = None,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    reward: Reward | None = None,
    metric: CustomMetric | None = None,
    run: DeviceRun | None = None,
) -> TrainingOutcome:
    """Train in place with the options' optimizer (+ optional cosine schedule). Raises TrialFailure at
    the time limit and TrialPruned (with the partial curve) on NaN loss, divergence, or a validation
    score (`val_score`: the reward, accuracy by default) below `prune_below[epoch]`; `on_epoch(epoch,
    point)` sees every epoch's curve point. `augment(batch, generator)`, when given (a dataset's
    `augment`), transforms every training batch; it draws from its own seeded generator, so the
    batch order is the same with or without it. `run` says how the model runs on its device (see
    accelerator.place, which the evaluator calls); by default the options' precision and memory
    format on the device the model is on."""
    outcome = TrainingOutcome()
    run = run or place(model, model_device(model), options.precision, options.channels_last)
    scaler = run.scaler()
    try:
        with scaled_steps(scaler):
            _train(model, batches, options, seed, task, epochs, on_epoch, validation, prune_below or {}, outcome, augment,
                   reward, metric, run, scaler)
    except TrialPruned as exc:
        exc.curve = outcome.curve  # a pruned trial keeps the curve it had so far
        raise
    return outcome


def _train(model: nn.Module, batches: Batches, options: TrainingOptions, seed: int, task: Task, epochs: int | None,
           on_epoch: Callable[[int, dict[str, float]], None] | None, validation: Batches | None,
           prune_below: dict[int, float], outcome: TrainingOutcome,
           augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None,
           reward: Reward | None, metric: CustomMetric | None, run: DeviceRun, scaler: torch.amp.GradScaler | None) -> None:
    epochs = epochs or options.epochs
    torch.manual_seed(seed)
    augment_generator = torch.Generator().manual_seed(seed + 1)
    loss_fn = task.loss(options.loss, options.label_smoothing)
    optimizer = make_optimizer(options.optimizer, model.parameters(), options.lr, options.weight_decay, options.momentum,
                               options.nesterov)
    steps_per_epoch = math.ceil(len(batches) / options.batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch) if options.cosine else None
    reward = reward or task.reward("auto")
    start = time.perf_counter()
    deadline = start + options.time_limit if options.time_limit else math.inf
    first_loss = None
    for epoch in range(1, epochs + 1):
        model.train()
        total = torch.zeros((), device=run.device)
        seen = 0
        for x, y in batches.epoch():
            if augment is not None:
                x = augment(x, augment_generator)
            with run.autocast():  # forward and loss only; backward runs outside it
                loss = loss_fn(model(run.input(x)), y)
            optimizer.zero_grad(set_to_none=True)
            backward_step(loss, optimizer, scaler)
            if scheduler is not None:
                scheduler.step()
            total += loss.detach() * len(y)
            seen += len(y)
            if time.perf_counter() > deadline:
                raise TrialFailure(f"time limit of {options.time_limit:g}s exceeded during epoch {epoch}")
        outcome.samples += seen
        outcome.seconds = time.perf_counter() - start
        train_loss = float(total) / max(1, seen)
        if not math.isfinite(train_loss):
            raise TrialPruned(f"training loss became {train_loss} in epoch {epoch}", diverged=True)
        first_loss = first_loss if first_loss is not None else train_loss
        if train_loss > options.divergence_factor * max(first_loss, 1e-3):
            raise TrialPruned(f"training diverged: loss {train_loss:.3g} in epoch {epoch} (first epoch {first_loss:.3g})",
                              diverged=True)
        point: dict[str, float] = {"epoch": epoch, "train_loss": train_loss}
        if validation is not None:
            metrics = score_batches(model, validation, task, reward, metric, options.loss, run)
            point.update(curve_point(metrics, reward))
            outcome.val_metrics = metrics
        outcome.curve.append(point)
        if on_epoch is not None:
            on_epoch(epoch, point)
        if epoch in prune_below and "val_score" in point and point["val_score"] < prune_below[epoch]:
            raise TrialPruned(f"stopped at epoch {epoch}: validation {reward.name} {point['val_score']:.4f} below the median "
                              f"{prune_below[epoch]:.4f} of earlier trials")
    outcome.seconds = time.perf_counter() - start


def curve_point(metrics: dict[str, Any], reward: Reward) -> dict[str, float]:
    """What a learning curve keeps of one epoch's validation metrics: the loss, the reward as
    `val_score` (what median stopping compares), and accuracy / RMSE where the task has them."""
    point = {"val_loss": float(metrics["loss"]), "val_score": reward(metrics)}
    for key in ("accuracy", "rmse"):
        if key in metrics:
            point[f"val_{key}"] = float(metrics[key])
    return point
