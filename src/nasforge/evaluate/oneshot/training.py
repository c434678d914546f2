"""Training a supernet: SPOS's single path per step (or FairNAS's fair set of paths), with an
epoch-level checkpoint that a killed run resumes from exactly.

Each step draws its path(s) (sampling.py), runs the batch through each, sums the gradients and takes
one optimiser step. Weights off the drawn paths get no gradient and are not touched (AdamW skips a
parameter without one, weight decay included). Batch order, path draws and augmentation are seeded
per epoch, so resuming after epoch k repeats what the uninterrupted run would have done from k.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...errors import NasforgeError
from ...space.supernet.base import Supernet
from ..trainer import model_device
from .sampling import PathSampler


class SupernetError(NasforgeError):
    """The supernet cannot be trained (diverged) or its checkpoint belongs to another setup."""


@dataclass(frozen=True)
class SupernetOptions:
    epochs: int = 30
    sampling: str = "uniform"
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    cosine: bool = True
    label_smoothing: float = 0.0


@dataclass
class SupernetState:
    """What a finished or interrupted training leaves: epochs done, loss per epoch, CPU seconds."""

    epochs_done: int = 0
    curve: list[dict[str, float]] = field(default_factory=list)
    cpu_seconds: float = 0.0


def _epoch_seed(seed: int, epoch: int, stream: int) -> int:
    return (seed * 1_000_003 + epoch * 7919 + stream) % (2**63)


def train_supernet(supernet: Supernet, sampler: PathSampler, x: torch.Tensor, y: torch.Tensor, options: SupernetOptions,
                   seed: int, checkpoint: Path | None = None, signature: dict[str, Any] | None = None,
                   augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
                   log: Callable[[str], None] | None = None, on_epoch: Callable[[int], None] | None = None) -> SupernetState:
    """Train `supernet` in place for `options.epochs`, resuming from `checkpoint` when it exists (it must
    have been written with the same options, seed and `signature`: space, data); returns the state."""
    optimizer = torch.optim.AdamW(supernet.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    steps_per_epoch = math.ceil(len(x) / options.batch_size)
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, options.epochs * steps_per_epoch))
                 if options.cosine else None)
    identity = {"options": asdict(options), "seed": seed, "signature": signature or {}}
    state = SupernetState()
    if checkpoint is not None and checkpoint.exists():
        state = _load(checkpoint, identity, supernet, optimizer, scheduler)
        if log and state.epochs_done < options.epochs:
            log(f"supernet: resuming from epoch {state.epochs_done} of {options.epochs} ({checkpoint})")
    for epoch in range(state.epochs_done + 1, options.epochs + 1):
        start = time.process_time()
        loss = _epoch(supernet, sampler, x, y, options, seed, epoch, optimizer, scheduler, augment)
        state.epochs_done = epoch
        state.cpu_seconds += time.process_time() - start
        state.curve.append({"epoch": epoch, "train_loss": loss})
        if checkpoint is not None:
            _save(checkpoint, identity, supernet, optimizer, scheduler, state)
        if log:
            log(f"supernet: epoch {epoch}/{options.epochs}, train loss {loss:.4f} ({state.cpu_seconds:.0f} CPU-s)")
        if on_epoch is not None:
            on_epoch(epoch)
    supernet.eval()
    return state


def _epoch(supernet: Supernet, sampler: PathSampler, x: torch.Tensor, y: torch.Tensor, options: SupernetOptions, seed: int,
           epoch: int, optimizer: torch.optim.Optimizer, scheduler: Any,
           augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None) -> float:
    supernet.train()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(_epoch_seed(seed, epoch, 0)))
    rng = np.random.default_rng(_epoch_seed(seed, epoch, 1))
    augment_generator = torch.Generator().manual_seed(_epoch_seed(seed, epoch, 2))
    total, count = 0.0, 0
    device = model_device(supernet)  # the data stay on the CPU; each batch goes to the supernet's device
    for i in range(0, len(x), options.batch_size):
        idx = order[i: i + options.batch_size]
        batch = (x[idx] if augment is None else augment(x[idx], augment_generator)).to(device)
        target = y[idx].to(device)
        optimizer.zero_grad(set_to_none=True)
        for genome in sampler.step(rng):
            supernet.activate(genome)
            loss = nn.functional.cross_entropy(supernet(batch), target, label_smoothing=options.label_smoothing)
            loss.backward()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    mean = total / max(1, count)
    if not math.isfinite(mean):
        raise SupernetError(f"supernet training diverged in epoch {epoch} (loss {mean}); lower the learning rate")
    return mean


def _save(path: Path, identity: dict[str, Any], supernet: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
          state: SupernetState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"identity": identity, "model": supernet.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "state": asdict(state)}, tmp)
    tmp.replace(path)  # atomic: a kill while saving leaves the previous checkpoint whole


def _load(path: Path, identity: dict[str, Any], supernet: nn.Module, optimizer: torch.optim.Optimizer,
          scheduler: Any) -> SupernetState:
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which, never a traceback from torch
        raise SupernetError(f"{path} is not a readable supernet checkpoint ({type(exc).__name__}: {exc}); remove it to "
                            "train the supernet again") from None
    if saved.get("identity") != identity:
        raise SupernetError(f"{path} was trained with other options, seed, space or data than this run's; remove it to train "
                            "the supernet again")
    supernet.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    if scheduler is not None and saved.get("scheduler") is not None:
        scheduler.load_state_dict(saved["scheduler"])
    return SupernetState(**saved["state"])
