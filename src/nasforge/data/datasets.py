"""Datasets as in-memory tensors with fixed train / validation / test splits.

Built-ins need no download: `digits` (scikit-learn's bundled 8x8 digits) and `mnist1d` (generated
locally by the mnist1d package). User data: a `.npz` with `x`, `y` (and optional `x_val`/`y_val`,
`x_test`/`y_test`) or a `.csv` with a label column. Every problem is reported as a DataError before
any training starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError


@dataclass
class Dataset:
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

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "classes": [c.item() if isinstance(c, np.generic) else c for c in self.classes],
            "sizes": {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)},
            "normalization": {"mean": self.mean, "std": self.std},
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


def _fsdd(path: str, o: SourceOptions) -> dict[str, np.ndarray]:
    from .audio import MelOptions, load_fsdd

    return load_fsdd(path, o.split, o.held_out_speaker, o.cache_dir, options=MelOptions(band_norm=o.band_norm),
                     val_speaker=o.val_speaker)


def _fsdd_augment(o: SourceOptions) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None:
    from .audio import SpectrogramAugment

    return SpectrogramAugment() if o.augment else None


def _fsdd_views(o: SourceOptions) -> dict[str, Any] | None:
    from .audio import SpectrogramViews

    return SpectrogramViews().spec() if o.test_views else None


def make_views(spec: dict[str, Any] | None) -> torch.nn.Module | None:
    """The test-time views module a Dataset's (or a stored final model's) `test_views` spec names."""
    if spec is None:
        return None
    if spec.get("kind") == "spectrogram":
        from .audio import SpectrogramViews

        return SpectrogramViews(spec["shift"], spec["warp"])
    raise DataError(f"unknown test-time views {spec!r}")


def _images(path: str, o: SourceOptions) -> dict[str, np.ndarray]:
    from .images import load_image_folder

    return load_image_folder(path, o.image_size)


# "SOURCE:PATH" -> arrays as a .npz would give them (then split and normalised the same way).
SOURCES: dict[str, Callable[[str, SourceOptions], dict[str, np.ndarray]]] = {"fsdd": _fsdd, "images": _images}
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
    if sep and prefix in (*SOURCES, *TEXT_SOURCES, *LANGUAGE_MODEL_SOURCES):
        if not rest:
            raise DataError(f"dataset {source!r}: give the path after '{prefix}:'")
        return prefix, rest
    return "", source


def _to_layout(x: np.ndarray, layout: str, where: str) -> np.ndarray:
    if layout == "auto":
        if x.ndim == 4:
            layout = "nchw"
        elif x.ndim == 2:
            layout = "nl"
        elif x.ndim == 3:
            # N x H x W (square or near-square images) versus N x C x L (few channels, long signals).
            layout = "ncl" if x.shape[1] <= 16 and x.shape[2] > 4 * x.shape[1] else "nhw"
        else:
            raise DataError(f"{where}: x must be 2-D (N x L), 3-D (N x H x W or N x C x L) or 4-D (N x C x H x W), got shape {x.shape}")
    expected = {"nchw": 4, "nhw": 3, "ncl": 3, "nl": 2}[layout]
    if x.ndim != expected:
        raise DataError(f"{where}: layout {layout!r} needs a {expected}-D x, got shape {x.shape}")
    if layout in ("nhw", "nl"):
        x = x[:, None]
    return x


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


def _labels(y: np.ndarray, classes: np.ndarray | None, where: str) -> tuple[np.ndarray, np.ndarray]:
    if y.ndim != 1:
        raise DataError(f"{where}: y must be 1-D (one label per sample), got shape {y.shape}")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise DataError(f"{where}: float labels must be finite whole numbers")
        y = y.astype(np.int64)
    if classes is None:
        classes = np.unique(y)
    index = {c: i for i, c in enumerate(classes.tolist())}
    unknown = set(np.unique(y).tolist()) - set(index)
    if unknown:
        raise DataError(f"{where}: labels {sorted(unknown)[:5]} do not occur in the training data")
    return np.array([index[v] for v in y.tolist()], dtype=np.int64), classes


def _check_x(x: np.ndarray, n: int, where: str) -> np.ndarray:
    if x.dtype.kind not in "fiub":
        raise DataError(f"{where}: x must be numeric, got dtype {x.dtype}")
    x = x.astype(np.float32)
    if len(x) != n:
        raise DataError(f"{where}: x has {len(x)} samples but y has {n}")
    if not np.all(np.isfinite(x)):
        raise DataError(f"{where}: x contains NaN or infinite values ({int(np.sum(~np.isfinite(x)))} of them)")
    return x


def _split(n: int, y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 else None
    try:
        a, b = train_test_split(idx, test_size=fraction, random_state=seed, stratify=stratify)
    except ValueError:
        a, b = train_test_split(idx, test_size=fraction, random_state=seed)
    return np.sort(a), np.sort(b)


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
) -> Dataset:
    """Load a built-in or user dataset and split it; `seed` fixes the splits."""
    options = options or SourceOptions()
    kind, rest = source_kind(source)
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
    elif kind or Path(source).expanduser().is_dir():
        arrays = SOURCES[kind or "images"](rest, options)
        name = source
        normalize = True if normalize is None else normalize
    else:
        path = Path(source).expanduser()
        arrays = _load_file(path, label_column)
        name = path.name
        normalize = True if normalize is None else normalize
    where = name
    y_all, classes = _labels(np.asarray(arrays["y"]), None, where)
    x_all = _check_x(_to_layout(np.asarray(arrays["x"]), layout, where), len(y_all), where)
    if len(classes) < 2:
        raise DataError(f"{where}: need at least 2 classes, found {len(classes)} ({classes.tolist()})")
    if len(y_all) < 10:
        raise DataError(f"{where}: need at least 10 samples, found {len(y_all)}")

    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split in ("val", "test"):
        if f"x_{split}" in arrays:
            ys, _ = _labels(np.asarray(arrays[f"y_{split}"]), classes, f"{where} ({split})")
            xs = _check_x(_to_layout(np.asarray(arrays[f"x_{split}"]), layout, f"{where} ({split})"), len(ys), f"{where} ({split})")
            if xs.shape[1:] != x_all.shape[1:]:
                raise DataError(f"{where}: x_{split} samples have shape {xs.shape[1:]}, x has {x_all.shape[1:]}")
            parts[split] = (xs, ys)
    # Groups mean something only when the source chose its validation split (a whole speaker);
    # with a random one, the same groups would sit on both sides of it.
    groups = np.asarray(arrays["groups"]) if kind and "groups" in arrays and "val" in parts else None
    if groups is not None and len(groups) != len(y_all):
        raise DataError(f"{where}: {len(groups)} groups for {len(y_all)} samples")
    x_train, y_train = x_all, y_all
    for split, fraction in (("test", test_fraction), ("val", val_fraction)):
        if split not in parts:
            keep, held = _split(len(y_train), y_train, fraction, seed)
            parts[split] = (x_train[held], y_train[held])
            x_train, y_train = x_train[keep], y_train[keep]
            groups = groups[keep] if groups is not None else None
    if len(np.unique(y_train)) < 2:
        raise DataError(f"{where}: the training split has fewer than 2 classes")

    mean: list[float] = []
    std: list[float] = []
    if normalize:
        axes = (0, *range(2, x_train.ndim))
        m = x_train.mean(axis=axes, keepdims=True)
        s = x_train.std(axis=axes, keepdims=True)
        s[s == 0] = 1.0
        x_train = (x_train - m) / s
        parts = {k: ((xv - m) / s, yv) for k, (xv, yv) in parts.items()}
        mean, std = m.ravel().tolist(), s.ravel().tolist()

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a))

    return Dataset(
        name=name,
        x_train=t(x_train.astype(np.float32)),
        y_train=t(y_train),
        x_val=t(parts["val"][0].astype(np.float32)),
        y_val=t(parts["val"][1]),
        x_test=t(parts["test"][0].astype(np.float32)),
        y_test=t(parts["test"][1]),
        num_classes=len(classes),
        classes=classes.tolist(),
        mean=mean,
        std=std,
        augment=AUGMENTS[kind](options) if kind in AUGMENTS else None,
        groups=groups,
        test_views=VIEWS[kind](options) if kind in VIEWS else None,
    )


def split_warnings(data: Dataset) -> list[str]:
    """Why scores on this data will mislead: validation or test classes that never occur in training
    (a network cannot learn a class it never sees; with one sample per class, most cannot)."""
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
