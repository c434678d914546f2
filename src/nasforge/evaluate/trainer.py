"""The in-memory training loop: batches are index slices of tensors, never a per-sample DataLoader,
so a small network trains at the speed of the network."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import TrialFailure, TrialPruned
from .metrics import classification_metrics


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


def model_device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


@dataclass
class TrainingOutcome:
    curve: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    samples: int = 0


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> tuple[np.ndarray, float]:
    """Predicted classes and mean cross-entropy over a split."""
    model.eval()
    device = model_device(model)
    x, y = x.to(device), y.to(device)  # no-ops on the CPU
    preds, loss = [], torch.zeros((), device=device)
    for i in range(0, len(x), batch_size):
        logits = model(x[i : i + batch_size])
        loss += nn.functional.cross_entropy(logits, y[i : i + batch_size], reduction="sum")
        preds.append(logits.argmax(1))
    return torch.cat(preds).cpu().numpy(), float(loss) / max(1, len(x))


def score(model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int) -> dict[str, Any]:
    pred, loss = predict(model, x, y)
    return classification_metrics(y.cpu().numpy(), pred, num_classes, loss)


def train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    options: TrainingOptions,
    seed: int,
    epochs: int | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    validation: tuple[torch.Tensor, torch.Tensor] | None = None,
    prune_below: dict[int, float] | None = None,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
) -> TrainingOutcome:
    """Train in place with AdamW (+ optional cosine schedule). Raises TrialFailure at the time
    limit and TrialPruned (with the partial curve) on NaN loss, divergence, or a validation accuracy
    below `prune_below[epoch]`; `on_epoch(epoch, val_accuracy)` sees every epoch's score.
    `augment(batch, generator)`, when given (a dataset's `augment`), transforms every training
    batch; it draws from its own seeded generator, so the batch order is the same with or without it."""
    outcome = TrainingOutcome()
    try:
        _train(model, x, y, options, seed, epochs, on_epoch, validation, prune_below or {}, outcome, augment)
    except TrialPruned as exc:
        exc.curve = outcome.curve  # a pruned trial keeps the curve it had so far
        raise
    return outcome


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, options: TrainingOptions, seed: int, epochs: int | None,
           on_epoch: Callable[[int, float], None] | None, validation: tuple[torch.Tensor, torch.Tensor] | None,
           prune_below: dict[int, float], outcome: TrainingOutcome,
           augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None) -> None:
    epochs = epochs or options.epochs
    device = model_device(model)
    x, y = x.to(device), y.to(device)  # once per candidate, not per batch; no-ops on the CPU
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    augment_generator = torch.Generator().manual_seed(seed + 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    steps_per_epoch = math.ceil(len(x) / options.batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch) if options.cosine else None
    start = time.perf_counter()
    deadline = start + options.time_limit if options.time_limit else math.inf
    first_loss = None
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        total = torch.zeros((), device=device)
        for i in range(0, len(x), options.batch_size):
            idx = order[i : i + options.batch_size].to(device)
            batch = x[idx] if augment is None else augment(x[idx], augment_generator)
            loss = nn.functional.cross_entropy(model(batch), y[idx], label_smoothing=options.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total += loss.detach() * len(idx)
            if time.perf_counter() > deadline:
                raise TrialFailure(f"time limit of {options.time_limit:g}s exceeded during epoch {epoch}")
        outcome.samples += len(x)
        outcome.seconds = time.perf_counter() - start
        train_loss = float(total) / len(x)
        if not math.isfinite(train_loss):
            raise TrialPruned(f"training loss became {train_loss} in epoch {epoch}", diverged=True)
        first_loss = first_loss if first_loss is not None else train_loss
        if train_loss > options.divergence_factor * max(first_loss, 1e-3):
            raise TrialPruned(f"training diverged: loss {train_loss:.3g} in epoch {epoch} (first epoch {first_loss:.3g})",
                              diverged=True)
        point = {"epoch": epoch, "train_loss": train_loss}
        if validation is not None:
            pred, val_loss = predict(model, *validation)
            point.update(val_accuracy=float(np.mean(pred == validation[1].cpu().numpy())), val_loss=val_loss)
            if on_epoch is not None:
                on_epoch(epoch, point["val_accuracy"])
        outcome.curve.append(point)
        if epoch in prune_below and "val_accuracy" in point and point["val_accuracy"] < prune_below[epoch]:
            raise TrialPruned(f"stopped at epoch {epoch}: validation accuracy {point['val_accuracy']:.4f} below the median "
                              f"{prune_below[epoch]:.4f} of earlier trials")
    outcome.seconds = time.perf_counter() - start
