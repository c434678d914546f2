"""The user's data as Python objects: arrays, tensors, dicts of splits, torch Datasets and DataLoaders.

    nasforge.search(data=(x, y))                                   numpy arrays or tensors
    nasforge.search(data={"train": (x, y), "test": (xt, yt)})      splits (train required)
    nasforge.search(data={"x": x, "y": y, "x_val": ..., ...})      the keys of a .npz
    nasforge.search(data=my_dataset)                               a map-style torch Dataset, split by fractions
    nasforge.search(data={"train": ds, "val": ds2, "test": ds3})  or already split (also a 3-tuple)
    nasforge.search(data=DataLoader(ds, num_workers=4))            its dataset, read with its workers

A Dataset is anything with `__len__` and `__getitem__` returning (input, target) (torch's, torchvision's
or a class of your own: duck typed, torchvision is never imported); the input a tensor, an array or a
PIL image. It is read into memory (the fast tensor path) when all of it takes at most
`memory_mb` as float32, else streamed (streamed.py); `stream` forces either. A DataLoader lends its
dataset and worker count; its sampler and batch size are not used (nasforge draws the order from the
trial's seed, and the batch size is a training option). An IterableDataset cannot be split or
shuffled reproducibly and is refused.

Every rule of the files applies (arrays.py): splits, standardisation from the training split, the
task inferred from the targets, each problem a DataError naming it; an item that raises while the
data is first read is a DataError with the item's index and the dataset's message.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

from ..errors import DataError, TrialFailure
from .arrays import MIN_SAMPLES, from_arrays, split_rows, to_layout
from .dataset import Dataset
from .streamed import Items, StreamedDataset, channel_statistics, read_item
from .tasks import Targets, as_targets, infer_task, stratify_key

SPLITS = ("train", "val", "test")
ARRAY_KEYS = ("x", "y", "x_val", "y_val", "x_test", "y_test")


def is_dataset(obj: Any) -> bool:
    """A map-style dataset by duck typing: indexable, sized, and not an array, a string or a mapping."""
    if isinstance(obj, (str, bytes, np.ndarray, torch.Tensor, Mapping, tuple, list)):
        return False
    return isinstance(obj, torch.utils.data.Dataset) or (hasattr(obj, "__getitem__") and hasattr(obj, "__len__"))


def is_loader(obj: Any) -> bool:
    return isinstance(obj, torch.utils.data.DataLoader)


def describe(obj: Any) -> str:
    """A short name of a data object, for the study's records ("python:TensorDataset[300]")."""
    if isinstance(obj, (tuple, list)) and len(obj) == 2 and not any(is_dataset(o) or is_loader(o) for o in obj):
        return f"python:arrays{list(np.shape(obj[0]))}"
    if isinstance(obj, Mapping):
        return "python:{" + ",".join(str(k) for k in obj) + "}"
    if is_loader(obj):
        obj = obj.dataset
    try:
        return f"python:{type(obj).__name__}[{len(obj)}]"
    except TypeError:
        return f"python:{type(obj).__name__}"


def load_objects(obj: Any, *, name: str | None = None, val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0,
                 layout: str = "auto", normalize: bool = True, task: str = "auto", stream: bool | None = None,
                 memory_mb: float = 1024, workers: int = 0) -> Any:
    """A Dataset (in memory) or StreamedDataset from any accepted object; see the module docstring."""
    name = name or describe(obj)
    if isinstance(obj, (Dataset, StreamedDataset)):
        return obj
    if isinstance(obj, torch.utils.data.IterableDataset) or (is_loader(obj) and isinstance(obj.dataset, torch.utils.data.IterableDataset)):
        raise DataError(f"{name}: an IterableDataset cannot be split or shuffled reproducibly; give a map-style Dataset "
                        "(with __len__ and __getitem__), arrays, or a file")
    splits = _splits(obj, name)
    if splits is None:  # arrays
        return from_arrays(_arrays(obj, name), name, normalize=normalize, table=True, val_fraction=val_fraction,
                           test_fraction=test_fraction, seed=seed, layout=layout, task=task)
    for key, value in list(splits.items()):
        if is_loader(value):
            workers = max(workers, int(value.num_workers))
            splits[key] = value.dataset
    return from_datasets(splits, name, normalize=normalize, stream=stream, memory_mb=memory_mb, workers=workers,
                         val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, layout=layout, task=task)


def _splits(obj: Any, name: str) -> dict[str, Any] | None:
    """{split: dataset} for dataset forms, None for array forms; DataError for anything else."""
    if is_dataset(obj) or is_loader(obj):
        return {"train": obj}
    if isinstance(obj, (tuple, list)):
        if len(obj) == 3 and all(is_dataset(o) or is_loader(o) for o in obj):
            return dict(zip(SPLITS, obj))
        if len(obj) == 2 and not any(is_dataset(o) or is_loader(o) for o in obj):
            return None
        raise DataError(f"{name}: a tuple is (x, y) arrays or (train, val, test) datasets; got {len(obj)} items of types "
                        f"{', '.join(type(o).__name__ for o in obj)}")
    if isinstance(obj, Mapping):
        keys = set(obj)
        if keys <= set(ARRAY_KEYS):
            return None
        if keys <= set(SPLITS) and "train" in keys:
            values = list(obj.values())
            if all(is_dataset(v) or is_loader(v) for v in values):
                return dict(obj)
            if all(isinstance(v, (tuple, list)) and len(v) == 2 for v in values):
                return None
            raise DataError(f"{name}: give every split as (x, y) arrays, or every split as a Dataset")
        raise DataError(f"{name}: unknown keys {sorted(map(str, keys - set(SPLITS) - set(ARRAY_KEYS)))}; a dict of data has "
                        f"'train' (and optionally 'val', 'test') or the keys of a .npz ({', '.join(ARRAY_KEYS)})")
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        raise DataError(f"{name}: a single array has no targets; give (x, y)")
    raise DataError(f"{name}: cannot read data from a {type(obj).__name__}; give (x, y) arrays, a dict of splits, a "
                    "torch Dataset or DataLoader, a file path or a built-in name")


def _arrays(obj: Any, name: str) -> dict[str, Any]:
    if isinstance(obj, (tuple, list)):
        return {"x": obj[0], "y": obj[1]}
    if "train" in obj:
        out = {"x": obj["train"][0], "y": obj["train"][1]}
        for split in ("val", "test"):
            if split in obj:
                out[f"x_{split}"], out[f"y_{split}"] = obj[split]
        return out
    return dict(obj)


def _pairs(source: Any, name: str, workers: int, rows: Any = None) -> Iterator[tuple[np.ndarray, Any]]:
    """(input, target) of every item (or of `rows`), read by `workers` DataLoader processes when > 0.
    An item that raises is a DataError naming its index and the dataset's message."""
    items = _Raw(source, name)
    subset = items if rows is None else torch.utils.data.Subset(items, list(rows))
    loader: Any = (torch.utils.data.DataLoader(subset, batch_size=None, num_workers=workers, collate_fn=_as_is) if workers
                   else (subset[i] for i in range(len(subset))))
    try:
        yield from loader
    except TrialFailure as exc:
        raise DataError(str(exc)) from None
    except Exception as exc:  # re-raised from a DataLoader worker: keep its last line, the message
        raise DataError(f"{name}: {str(exc).strip().splitlines()[-1]}") from None


def _as_is(item: Any) -> Any:
    return item


class _Raw(torch.utils.data.Dataset):
    """Items as (float32 array, plain target), each read error naming its item."""

    def __init__(self, source: Any, name: str):
        self.source, self.name = source, name

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> tuple[np.ndarray, Any]:
        return read_item(self.source, int(i), self.name)


def _length(source: Any, where: str) -> int:
    try:
        return len(source)
    except Exception as exc:
        raise DataError(f"{where}: len() of the dataset raised {type(exc).__name__}: {exc}") from None


def from_datasets(splits: dict[str, Any], name: str, *, val_fraction: float, test_fraction: float, seed: int, layout: str,
                  task: str, normalize: bool, stream: bool | None, memory_mb: float, workers: int) -> Any:
    """Datasets -> an in-memory Dataset (they fit in `memory_mb`, or `stream` is False) or a StreamedDataset."""
    sizes = {k: _length(v, f"{name} ({k})") for k, v in splits.items()}
    if sizes["train"] < MIN_SAMPLES:
        raise DataError(f"{name}: need at least {MIN_SAMPLES} samples, found {sizes['train']}")
    first, _ = next(_pairs(splits["train"], name, 0, rows=[0]))
    needed = sum(sizes.values()) * first.size * 4
    if stream is False or (stream is None and needed <= memory_mb * 2**20):
        arrays: dict[str, Any] = {}
        for split, source in splits.items():
            xs, ys = _read_all(source, f"{name} ({split})" if split != "train" else name, workers, first.shape)
            prefix = "" if split == "train" else f"_{split}"
            arrays[f"x{prefix}"], arrays[f"y{prefix}"] = xs, ys
        return from_arrays(arrays, name, layout=layout, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
                           normalize=normalize, task=task, table=True)
    return _streamed(splits, name, first.shape, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
                     layout=layout, task=task, normalize=normalize, workers=workers)


def _read_all(source: Any, name: str, workers: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    n = len(source)
    x = np.empty((n, *shape), dtype=np.float32)
    ys = []
    for i, (xi, yi) in enumerate(_pairs(source, name, workers)):
        if xi.shape != shape:
            raise DataError(f"{name}: item {i} has an input of shape {xi.shape}, item 0 has {shape}; every input must "
                            "have the same shape (resize them in the dataset)")
        x[i] = xi
        ys.append(yi)
    return x, _target_array(ys, name)


def _target_array(ys: list[Any], name: str) -> np.ndarray:
    try:
        return np.asarray(ys) if not isinstance(ys[0], str) else np.asarray(ys, dtype=object).astype(str)
    except ValueError as exc:
        raise DataError(f"{name}: the targets do not form an array ({exc}); every item's target must have the same shape") from None


def _targets(source: Any, name: str, workers: int) -> np.ndarray:
    """Every target of a dataset: its `targets` attribute (torchvision's datasets and ImageFolder have
    one), else one pass reading every item."""
    found = getattr(source, "targets", None)
    if found is not None and len(found) == len(source):
        return as_targets(found, name)
    return as_targets(_target_array([y for _, y in _pairs(source, name, workers)], name), name)


def _streamed(splits: dict[str, Any], name: str, shape: tuple[int, ...], *, val_fraction: float, test_fraction: float,
              seed: int, layout: str, task: str, normalize: bool, workers: int) -> StreamedDataset:
    y_raw = _targets(splits["train"], name, workers)
    task = infer_task(y_raw) if task == "auto" else task
    targets = Targets(task, y_raw, name)
    for split in ("val", "test"):  # their targets must read like the training split's
        if split in splits:
            targets.read(_targets(splits[split], f"{name} ({split})", workers), f"{name} ({split})")
    # Items take the same layout as the in-memory path (a channel axis where the items have none).
    input_shape = tuple(to_layout(np.empty((1, *shape), dtype=np.float32), layout, name, table=True).shape[1:])
    classes = targets.classes if task == "classification" else None
    rows = np.arange(len(y_raw))
    held: dict[str, np.ndarray] = {}
    labels = targets.y_train
    for split, fraction in (("test", test_fraction), ("val", val_fraction)):
        if split not in splits:
            keep, out = split_rows(len(rows), stratify_key(task, labels), fraction, seed)
            held[split], rows, labels = rows[out], rows[keep], labels[keep]

    def items(split: str) -> Items:
        source = splits.get(split, splits["train"])
        indices = held.get(split) if split != "train" else rows
        where = name if split == "train" else f"{name} ({split})"
        return Items(source, indices if split not in splits or split == "train" else None, where, task, classes, input_shape)

    train = items("train")
    mean, std = channel_statistics(train, seed, workers) if normalize else ([], [])
    target_mean: list[float] = []
    target_std: list[float] = []
    if task == "regression":
        s = labels.std(axis=0)
        target_mean, target_std = labels.mean(axis=0).tolist(), np.where(s > 0, s, 1.0).tolist()
    return StreamedDataset(name=name, train=train, val=items("val"), test=items("test"), task=task, num_classes=targets.outputs,
                           classes=[c.item() if isinstance(c, np.generic) else c for c in targets.classes],
                           input_shape=input_shape, mean=mean, std=std, target_mean=target_mean, target_std=target_std,
                           workers=workers)
