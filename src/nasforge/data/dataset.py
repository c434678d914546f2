"""The in-memory dataset record: tensors split into train / validation / test, with what the
network and the trainer need to know of them (shape, head width, task, normalisation, views).

Every in-memory source (data/datasets.py, arrays.py, objects.py, text.py) returns one; streamed data
has its own record (streamed.py) with the same `inputs` / `batches` / `summary` surface.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .batches import Batches, TensorBatches, fits_on_device, indexed_device

# An in-memory dataset larger than this that knows how to load itself again (`Dataset.recipe`) is
# sent to executor workers as that recipe, not as its tensors.
RECIPE_BYTES = 256 * 2**20


@dataclass
class Dataset:
    """A dataset held in memory as tensors, split into train / validation / test.

    `num_classes` is the width of the network's head: the classes (classification), the labels
    (multi-label) or the targets (regression); `classes` names them."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    classes: list[Any] = field(default_factory=list)
    # Per-channel statistics subtracted/divided before training; an exported model expects
    # inputs normalised the same way.
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    # A training-only per-batch transform, (x, generator) -> x, that the source provides (FSDD:
    # SpectrogramAugment); the trainer applies it to every training batch, never to val / test.
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None
    # The group of every training row (FSDD: its speaker), given only where the validation split is
    # whole groups of its own; cross-validation (evaluate/crossval.py) then never splits a group.
    groups: np.ndarray | None = None
    # What the returned model averages its predictions over at test time (FSDD with test_views:
    # SpectrogramViews.spec()); None: the network sees each input once. `make_views` builds it.
    test_views: dict[str, Any] | None = None
    # classification (y: class indices), multilabel (y: samples x labels of 0/1), regression
    # (y: samples x targets, in their own units); see data/tasks.py.
    task: str = "classification"
    # Regression: training-split mean and std of every target; networks learn standardised targets.
    target_mean: list[float] = field(default_factory=list)
    target_std: list[float] = field(default_factory=list)
    # How to load this dataset again (a picklable callable), for executors' workers; see __getstate__.
    recipe: Callable[[], Dataset] | None = field(default=None, repr=False, compare=False)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_outputs(self) -> int:
        return self.num_classes

    def inputs(self, n: int) -> torch.Tensor:
        """The first `n` training inputs, as the network sees them (cost measures, proxies, examples)."""
        return self.x_train[:n]

    def batches(self, split: str, batch_size: int, device: torch.device | str = "cpu", seed: int | None = None) -> Batches:
        """One split ("train", "val", "test", or "train+val" for a final retrain) as index slices of its
        tensors, on `device` once per process when the data fits there (on_device), else copied there a
        batch at a time; shuffled by `seed` when given."""
        device = indexed_device(device)
        x, y = self.on_device(split, device)
        return TensorBatches(x, y, batch_size, device, seed, resident=x.device == device)

    def on_device(self, split: str, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        """A split's (x, y) on `device`, copied there once and kept for this process's later trials,
        when all splits together fit (data/batches.py: fits_on_device); otherwise the host tensors.
        The copies are never pickled: each executor worker makes its own, on its own GPU."""
        device = indexed_device(device)
        host = self.joined() if split == "train+val" else (getattr(self, f"x_{split}"), getattr(self, f"y_{split}"))
        if device.type == "cpu" or host[0].device == device:
            return host
        copies = self.__dict__.setdefault("_device_copies", {})
        fits = copies.setdefault(("fits", str(device)), fits_on_device(self.nbytes(), device))
        if not fits:
            return host
        key = (split, str(device))
        if key not in copies:
            copies[key] = tuple(t.to(device) for t in host)
        return copies[key]

    def joined(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The training and validation splits as one (cross-validation folds index into it; a
        train+val retrain trains on it); token sequences (0 = padding) padded to one length first."""
        a, b = self.x_train, self.x_val
        if a.shape[1:] != b.shape[1:]:
            if a.dim() != 2 or a.dtype.is_floating_point:
                raise ValueError(f"cannot join splits of shapes {tuple(a.shape[1:])} and {tuple(b.shape[1:])}")
            width = max(a.shape[1], b.shape[1])
            a, b = (torch.nn.functional.pad(t, (0, width - t.shape[1])) for t in (a, b))
        return torch.cat([a, b]), torch.cat([self.y_train, self.y_val])

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test))

    def __getstate__(self) -> dict[str, Any]:
        # Pickled for every executor worker: a large dataset that can load itself again travels as
        # its recipe (a path and options) and each worker loads it there, instead of every tensor
        # being copied through the driver; everything else travels whole, once per worker.
        if self.recipe is not None and self.nbytes() > RECIPE_BYTES:
            return {"__recipe__": self.recipe}
        state = dict(self.__dict__)
        state.pop("_device_copies", None)  # this process's GPU copies; a worker makes its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "__recipe__" in state:
            state = dict(state["__recipe__"]().__dict__)
        self.__dict__.update(state)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "classes": [c.item() if isinstance(c, np.generic) else c for c in self.classes],
            "sizes": {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)},
            "normalization": {"mean": self.mean, "std": self.std},
            **({"target_normalization": {"mean": self.target_mean, "std": self.target_std}} if self.target_mean else {}),
            "augment": repr(self.augment) if self.augment is not None else None,
            **({"groups": sorted(np.unique(self.groups).tolist())} if self.groups is not None else {}),
            **({"test_views": self.test_views} if self.test_views is not None else {}),
        }
