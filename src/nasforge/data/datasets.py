"""Datasets as in-memory tensors with fixed train / validation / test splits.

Built-ins need no download: `digits` (scikit-learn's bundled 8x8 digits) and `mnist1d` (generated
locally by the mnist1d package). User data: a `.npz` with `x`, `y` (and optional `x_val`/`y_val`,
`x_test`/`y_test`) or a `.csv` with a label column. Every problem is reported as a DataError before
any training starts.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from ..registry import DATA_SOURCES
from .arrays import from_arrays
from .batches import Batches

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
        from .batches import TensorBatches, indexed_device

        device = indexed_device(device)
        x, y = self.on_device(split, device)
        return TensorBatches(x, y, batch_size, device, seed, resident=x.device == device)

    def on_device(self, split: str, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        """A split's (x, y) on `device`, copied there once and kept for this process's later trials,
        when all splits together fit (data/batches.py: fits_on_device); otherwise the host tensors.
        The copies are never pickled: each executor worker makes its own, on its own GPU."""
        from .batches import fits_on_device, indexed_device

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


def _digits(**_: Any) -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return {"x": d.images[:, None, :, :] / 16.0, "y": d.target}


def _mnist1d(**_: Any) -> dict[str, np.ndarray]:
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as exc:  # pragma: no cover - mnist1d is a declared dependency
        raise DataError("the mnist1d dataset needs the 'mnist1d' package: pip install mnist1d") from exc
    # make_dataset generates the standard 4,000/1,000 split locally; get_dataset() would download.
    d = make_dataset(get_dataset_args())
    return {"x": d["x"][:, None, :], "y": d["y"], "x_test": d["x_test"][:, None, :], "y_test": d["y_test"]}


# name -> loader returning arrays already in N x C x ... layout. New built-ins register here.
BUILTIN: dict[str, Callable[..., dict[str, np.ndarray]]] = {"digits": _digits, "mnist1d": _mnist1d}


@dataclass(frozen=True)
class SourceOptions:
    """What only some sources read (the config's dataset section); the others ignore it."""

    split: str = "upstream"
    held_out_speaker: str = "theo"
    image_size: int = 32
    max_length: int | None = None
    cache_dir: str | None = None
    # fsdd: training speaker whose recordings are the validation split of split 'speaker' ("auto":
    # the next speaker after the held-out one, in sorted order; None: a random val_fraction).
    val_speaker: str | None = "auto"
    # fsdd: random time shift / stretch and frequency warp of training batches (SpectrogramAugment).
    augment: bool = True
    # fsdd: per-recording normalisation of every mel band over time (audio.MelOptions.band_norm).
    band_norm: str | None = None
    # fsdd: the returned model averages its predictions over shifted / warped copies of each input.
    test_views: bool = False
    # image folders and torch Datasets: read a batch at a time (True), all into memory (False), or
    # streamed only when all of it would take more than `memory_mb` as float32 (None).
    stream: bool | None = None
    memory_mb: float = 1024
    # streamed data: DataLoader worker processes reading items.
    workers: int = 0


def fsdd_arrays(path: str, o: SourceOptions) -> dict[str, np.ndarray]:
    from .audio import MelOptions, load_fsdd

    return load_fsdd(path, o.split, o.held_out_speaker, o.cache_dir, options=MelOptions(band_norm=o.band_norm),
                     val_speaker=o.val_speaker)


def _fsdd_augment(o: SourceOptions) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None:
    from .audio import SpectrogramAugment

    return SpectrogramAugment() if o.augment else None


def _fsdd_views(o: SourceOptions) -> dict[str, Any] | None:
    from .audio import SpectrogramViews

    return SpectrogramViews().spec() if o.test_views else None


def _streamed_folder(path: str, name: str, o: SourceOptions, **split: Any) -> Any:
    """An image folder as a StreamedDataset when it is to be streamed (see SourceOptions.stream), else None."""
    from .images import ImageFolder
    from .objects import from_datasets

    if o.stream is False:
        return None
    folder = ImageFolder(path, o.image_size)
    needed = len(folder) * (1 if folder.mode == "L" else 3) * o.image_size**2 * 4
    if o.stream is None and needed <= o.memory_mb * 2**20:
        return None
    data = from_datasets({"train": folder}, name, layout="nchw", stream=True, memory_mb=o.memory_mb, workers=o.workers, **split)
    data.classes = list(folder.classes)  # names, where the items carry indices
    return data


def make_views(spec: dict[str, Any] | None) -> torch.nn.Module | None:
    """The test-time views module a Dataset's (or a stored final model's) `test_views` spec names."""
    if spec is None:
        return None
    if spec.get("kind") == "spectrogram":
        from .audio import SpectrogramViews

        return SpectrogramViews(spec["shift"], spec["warp"])
    raise DataError(f"unknown test-time views {spec!r}")


def image_arrays(path: str, o: SourceOptions) -> dict[str, np.ndarray]:
    from .images import load_image_folder

    return load_image_folder(path, o.image_size)


# "SOURCE:PATH" -> arrays as a .npz would give them (then split and normalised the same way):
# registry.DATA_SOURCES, where users register their own (`nasforge.register_data_source`).
SOURCES = DATA_SOURCES
# Sources whose training batches are augmented: SOURCE -> the transform for these options.
AUGMENTS: dict[str, Callable[[SourceOptions], Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None]] = {
    "fsdd": _fsdd_augment}
# Sources with test-time views: SOURCE -> their spec for these options (None when off).
VIEWS: dict[str, Callable[[SourceOptions], dict[str, Any] | None]] = {"fsdd": _fsdd_views}
# "SOURCE:PATH" of token data: classification sources load as a TextDataset, language-model
# sources as a CharCorpus (data/text.py), which a language-model evaluator trains on.
TEXT_SOURCES = ("rt-polarity",)
LANGUAGE_MODEL_SOURCES = ("tinyshakespeare", "charlm")


def source_kind(source: str) -> tuple[str, str]:
    """(kind, path) of a SOURCE:PATH name (kind '' for built-ins, files and folders)."""
    prefix, sep, rest = source.partition(":")
    if sep and (prefix in TEXT_SOURCES or prefix in LANGUAGE_MODEL_SOURCES or prefix in SOURCES):
        if not rest:
            raise DataError(f"dataset {source!r}: give the path after '{prefix}:'")
        return prefix, rest
    return "", source


def _load_file(path: Path, label_column: str) -> dict[str, np.ndarray]:
    if path.suffix not in (".npz", ".csv"):
        raise DataError(f"unknown dataset {str(path)!r}: give a built-in name ({', '.join(BUILTIN)}) or a .npz / .csv path")
    if not path.exists():
        raise DataError(f"dataset file not found: {path}")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except Exception as exc:
            raise DataError(f"{path}: not a readable .npz file ({exc})") from exc
        for key in ("x", "y"):
            if key not in arrays:
                raise DataError(f"{path}: missing array {key!r} (found {sorted(arrays)})")
        for a, b in (("x_val", "y_val"), ("x_test", "y_test")):
            if (a in arrays) != (b in arrays):
                raise DataError(f"{path}: {a!r} and {b!r} must be given together")
        return arrays
    if path.suffix == ".csv":
        import csv

        try:
            with open(path, newline="", encoding="utf-8-sig") as f:
                rows = list(csv.reader(f))
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); save the CSV as UTF-8") from None
        except (OSError, csv.Error) as exc:
            raise DataError(f"{path}: cannot read it as CSV ({exc})") from None
        if len(rows) < 2:
            raise DataError(f"{path}: needs a header row and at least one data row")
        header, body = rows[0], rows[1:]
        if label_column not in header:
            raise DataError(f"{path}: no label column {label_column!r}; columns are {header}")
        li = header.index(label_column)
        try:
            x = np.array([[float(v) for j, v in enumerate(r) if j != li] for r in body], dtype=np.float64)
        except ValueError as exc:
            raise DataError(f"{path}: feature columns must be numeric ({exc})") from exc
        if any(len(r) != len(header) for r in body):
            raise DataError(f"{path}: every row must have {len(header)} fields")
        return {"x": x, "y": np.array([r[li] for r in body])}
    raise DataError(f"unknown dataset {str(path)!r}: give a built-in name ({', '.join(BUILTIN)}) or a .npz / .csv path")


def load_dataset(
    source: str,
    *,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    label_column: str = "label",
    layout: str = "auto",
    normalize: bool | None = None,
    options: SourceOptions | None = None,
    task: str = "auto",
) -> Dataset:
    """Load a built-in or user dataset and split it; `seed` fixes the splits; `task` "auto" infers
    classification, multi-label or regression from the targets (data/tasks.py)."""
    options = options or SourceOptions()
    kind, rest = source_kind(source)
    table = False
    if kind in LANGUAGE_MODEL_SOURCES:
        raise DataError(f"{source}: a language-model corpus, not a classification dataset; load it with data.text.load_char_corpus")
    if kind in TEXT_SOURCES:
        from .text import load_polarity

        return load_polarity(rest, test_fraction=test_fraction, val_fraction=val_fraction, seed=seed,
                             max_length=options.max_length or 64)
    if source in BUILTIN:
        arrays = BUILTIN[source]()
        name, layout = source, "nchw" if arrays["x"].ndim == 4 else "ncl"
        normalize = False if normalize is None else normalize
    elif kind == "images" or (not kind and Path(source).expanduser().is_dir()):
        streamed = _streamed_folder(rest, source, options, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
                                    task=task, normalize=True if normalize is None else normalize)
        if streamed is not None:
            return streamed
        arrays = image_arrays(rest, options)
        name = source
        normalize = True if normalize is None else normalize
    elif kind:
        try:
            arrays = SOURCES[kind](rest, options)
        except (ImportError, AttributeError) as exc:
            raise DataError(f"{source}: the data source {kind!r} cannot be imported: {exc}") from None
        name = source
        normalize = True if normalize is None else normalize
    else:
        path = Path(source).expanduser()
        arrays = _load_file(path, label_column)
        name = path.name
        normalize = True if normalize is None else normalize
        table = path.suffix == ".csv"  # columns are features; an .npz's 2-D x is N x L signals
    dataset = from_arrays(arrays, name, layout=layout, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
                          normalize=normalize, task=task, table=table,
                          # Groups mean something only when the source chose its validation split (a whole
                          # speaker); with a random one, the same groups would sit on both sides of it.
                          groups=np.asarray(arrays["groups"]) if kind and "groups" in arrays else None,
                          augment=AUGMENTS[kind](options) if kind in AUGMENTS else None,
                          test_views=VIEWS[kind](options) if kind in VIEWS else None)
    # Workers of the pool and Ray executors load a large dataset again from here instead of
    # receiving its tensors (see Dataset.__getstate__); the same arguments give the same splits.
    dataset.recipe = functools.partial(load_dataset, source, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
                                       label_column=label_column, layout=layout, normalize=normalize, options=options,
                                       task=task)
    return dataset


def split_warnings(data: Dataset) -> list[str]:
    """Why a classifier's scores on this data will mislead: validation or test classes that never occur
    in training (a network cannot learn a class it never sees; with one sample per class, most cannot)."""
    if data.task != "classification":
        return []
    seen = set(np.unique(data.y_train.cpu().numpy()).tolist())
    found = []
    for split, y in (("validation", data.y_val), ("test", data.y_test)):
        classes = set(np.unique(y.cpu().numpy()).tolist())
        missing = sorted(classes - seen)
        if missing:
            names = ", ".join(str(data.classes[i]) for i in missing[:5]) + (", ..." if len(missing) > 5 else "")
            share = float(np.isin(y.cpu().numpy(), missing).mean())
            found.append(f"{data.name}: {len(missing)} of the {len(classes)} classes in the {split} split never occur in "
                         f"training ({names}): {share:.0%} of its samples cannot be classified right, so its scores are "
                         "capped accordingly; give more samples per class (or other split fractions)")
    return found
