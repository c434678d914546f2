"""Datasets as in-memory tensors with fixed train / validation / test splits.

Built-ins need no download: `digits` (scikit-learn's bundled 8x8 digits) and `mnist1d` (generated
locally by the mnist1d package). User data: a `.npz` with `x`, `y` (and optional `x_val`/`y_val`,
`x_test`/`y_test`) or a `.csv` with a label column. Every problem is reported as a DataError before
any training starts.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from ..registry import DATA_SOURCES
from .arrays import from_arrays
from .dataset import Dataset


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
