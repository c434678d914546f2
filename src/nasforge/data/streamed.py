"""Data that does not fit in memory: the splits stay map-style torch Datasets and are read a batch at
a time (data/batches.py: LoaderBatches), never a whole split at once.

`Items` views some rows of the user's dataset (or an ImageFolder) as the network sees them: the input
as a float tensor in the layout the spaces take (a channel axis added where the items have none) and
the target as the task reads it (a class index, a 0/1 label vector, a target vector). It pickles as
the user's dataset plus row indices: that is the recipe executor workers receive, not the data.
An item that raises fails the trial with the dataset's message and the item's index (ItemError).

`StreamedDataset` is the streamed counterpart of the in-memory `Dataset`: the same name, task,
classes and standardisation statistics (from a sample of the training split: `STATS_SAMPLES` items),
and `batches(split, ...)` in place of tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import DataError, TrialFailure
from .batches import Batches, LoaderBatches

# Training items read for the per-channel mean and std of a streamed split.
STATS_SAMPLES = 1000


class ItemError(TrialFailure):
    """An item of the user's dataset raised. Re-raised across DataLoader worker processes, where
    torch prefixes the worker's traceback: only the message is kept."""

    def __init__(self, message: str):
        if "Original Traceback" in message:
            message = message.strip().splitlines()[-1].partition("ItemError: ")[2] or message
        super().__init__(message)


def item_pair(item: Any, index: int, name: str) -> tuple[Any, Any]:
    """(input, target) of one item: a pair (x, y, ...) or a mapping with x / y (or image / label, input / target)."""
    if isinstance(item, (tuple, list)) and len(item) >= 2:
        return item[0], item[1]
    if isinstance(item, dict):
        for xk, yk in (("x", "y"), ("image", "label"), ("input", "target")):
            if xk in item and yk in item:
                return item[xk], item[yk]
    raise ItemError(f"{name}: item {index} is a {type(item).__name__}; items must be (input, target) pairs "
                    "or mappings with 'x' and 'y'")


def as_input(x: Any) -> np.ndarray:
    """An item's input as a float32 array: tensors and arrays as they are, a PIL image as C x H x W in [0, 1]."""
    if hasattr(x, "getbands"):  # a PIL image (a torchvision dataset without a ToTensor transform)
        a = np.asarray(x.convert("RGB" if len(x.getbands()) > 1 else "L"), dtype=np.float32) / 255.0
        return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy().astype(np.float32, copy=False)
    return np.asarray(x, dtype=np.float32)


def target_value(y: Any) -> Any:
    """An item's target as plain Python / numpy: a scalar label, or an array of labels or values."""
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    if isinstance(y, np.ndarray) and y.ndim == 0:
        y = y.item()
    if isinstance(y, np.generic):
        y = y.item()
    return y


def read_item(source: Any, index: int, name: str) -> tuple[np.ndarray, Any]:
    try:
        item = source[index]
    except Exception as exc:  # the user's dataset: whatever it raises, with its message and the item
        raise ItemError(f"{name}: item {index} raised {type(exc).__name__}: {exc}") from exc
    x, y = item_pair(item, index, name)
    return as_input(x), target_value(y)


class Items(torch.utils.data.Dataset):
    """Rows `indices` of `source` (all rows when None) as (input tensor, target tensor)."""

    def __init__(self, source: Any, indices: np.ndarray | None, name: str, task: str,
                 classes: list[Any] | None = None, shape: tuple[int, ...] | None = None):
        # `shape`: every input's shape as the networks take it (the item's own, or with a channel axis).
        self.source, self.name, self.task, self.shape = source, name, task, shape
        self.indices = None if indices is None else np.asarray(indices, dtype=np.int64)
        if task == "classification" and classes is None:
            raise ValueError(f"{name}: classification items need the training split's classes")
        self.classes = classes
        self._index = {c: i for i, c in enumerate(classes or ())}  # label -> class index (classification)

    def __len__(self) -> int:
        return len(self.indices) if self.indices is not None else len(self.source)

    def row(self, i: int) -> int:
        return int(self.indices[i]) if self.indices is not None else int(i)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        j = self.row(i)
        x, y = read_item(self.source, j, self.name)
        if self.shape is not None and x.shape != self.shape:
            if x.size != int(np.prod(self.shape)):
                raise ItemError(f"{self.name}: item {j} has an input of shape {x.shape}, the others {self.shape}")
            x = x.reshape(self.shape)
        return torch.from_numpy(np.ascontiguousarray(x)), self.target(y, j)

    def target(self, y: Any, row: int) -> torch.Tensor:
        if self.task == "classification":
            try:
                return torch.tensor(self._index[y], dtype=torch.int64)
            except (KeyError, TypeError):
                raise ItemError(f"{self.name}: item {row} has label {y!r}, which the training split does not have") from None
        return torch.as_tensor(np.asarray(y, dtype=np.float32).reshape(-1))

    def __repr__(self) -> str:
        return f"Items({self.name!r}, {len(self)} of {type(self.source).__name__})"


@dataclass
class StreamedDataset:
    """Train / validation / test as `Items`, read in batches; see the module docstring."""

    name: str
    train: Items
    val: Items
    test: Items
    task: str
    num_classes: int
    classes: list[Any]
    input_shape: tuple[int, ...]
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    target_mean: list[float] = field(default_factory=list)
    target_std: list[float] = field(default_factory=list)
    # DataLoader worker processes reading items (0: in the training process).
    workers: int = 0
    augment: Any = None
    groups: np.ndarray | None = None
    test_views: dict[str, Any] | None = None

    @property
    def num_outputs(self) -> int:
        return self.num_classes

    def batches(self, split: str, batch_size: int, device: torch.device | str = "cpu", seed: int | None = None) -> Batches:
        items: torch.utils.data.Dataset
        items = torch.utils.data.ConcatDataset([self.train, self.val]) if split == "train+val" else getattr(self, split)
        return LoaderBatches(items, batch_size, device, seed=seed, workers=self.workers, mean=self.mean, std=self.std)

    def inputs(self, n: int) -> torch.Tensor:
        """The first `n` training inputs, standardised as in training (cost measures, proxies, examples)."""
        x = torch.stack([self.train[i][0] for i in range(min(n, len(self.train)))])
        if self.mean:
            shape = (1, -1) + (1,) * (x.dim() - 2)
            x = (x - torch.tensor(self.mean).view(shape)) / torch.tensor(self.std).view(shape)
        return x

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "streamed": True,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "classes": self.classes,
            "sizes": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
            "normalization": {"mean": self.mean, "std": self.std, "from_samples": min(STATS_SAMPLES, len(self.train))},
            **({"target_normalization": {"mean": self.target_mean, "std": self.target_std}} if self.target_mean else {}),
            "augment": None,
        }


def channel_statistics(items: Items, seed: int, workers: int = 0) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (1 where 0) over up to STATS_SAMPLES training items, drawn with `seed`."""
    n = len(items)
    rows = np.sort(np.random.default_rng(seed).choice(n, size=min(n, STATS_SAMPLES), replace=False))
    sample = torch.utils.data.Subset(items, rows.tolist())
    total: torch.Tensor | None = None
    squares: torch.Tensor | None = None
    count = 0
    for x, _ in LoaderBatches(sample, 64, "cpu", workers=workers).epoch():
        x = x.double().transpose(0, 1).reshape(x.shape[1], -1)  # channels x values
        total = x.sum(1) if total is None else total + x.sum(1)
        squares = (x**2).sum(1) if squares is None else squares + (x**2).sum(1)
        count += x.shape[1]
    if total is None or squares is None or count == 0:
        raise DataError(f"{items.name}: no training items to take the per-channel mean and std from")
    mean = total / count
    std = (squares / count - mean**2).clamp_min(0).sqrt()
    std[std == 0] = 1.0
    return mean.tolist(), std.tolist()
