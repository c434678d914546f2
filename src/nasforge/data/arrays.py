"""Arrays -> a Dataset: layout, checks, train / validation / test splits and standardisation.

Every in-memory source ends here (built-ins, .npz / .csv files, image folders, fsdd, and the user's
own numpy arrays or tensors), so the rules are the same for all of them:
- splits: a split the data brings (`x_val` / `x_test`) is kept; otherwise `test_fraction` of the
  data is held out for the test, then `val_fraction` of the rest for validation, stratified by class
  for classification, fixed by `seed`;
- standardisation (files and the user's arrays; not the built-ins, already scaled): every input
  channel less its mean over the training split, over its standard deviation there; validation and
  test use the training split's statistics;
- regression targets: their training-split mean and standard deviation are recorded; networks are
  trained on standardised targets (evaluate/tasks.py) and scored in the targets' own units.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .dataset import Dataset
from .tasks import Targets, as_targets, infer_task, stratify_key

MIN_SAMPLES = 10


def to_layout(x: np.ndarray, layout: str, where: str, table: bool = False) -> np.ndarray:
    """x in the N x C x ... layout the spaces take. `auto` reads 4-D as N x C x H x W, 3-D as images or
    few-channel signals, and 2-D as a table of features ("nf": every column a channel of length 1, so
    convolutions mix features and no pooling averages them away) where the data is a table (`table`:
    CSV files, arrays given in Python), else as one-channel signals ("nl": N x L, .npz files)."""
    if layout == "auto":
        if x.ndim == 4:
            layout = "nchw"
        elif x.ndim == 2:
            layout = "nf" if table else "nl"
        elif x.ndim == 3:
            # N x H x W (square or near-square images) versus N x C x L (few channels, long signals).
            layout = "ncl" if x.shape[1] <= 16 and x.shape[2] > 4 * x.shape[1] else "nhw"
        else:
            raise DataError(f"{where}: x must be 2-D (N x L), 3-D (N x H x W or N x C x L) or 4-D (N x C x H x W), got shape {x.shape}")
    expected = {"nchw": 4, "nhw": 3, "ncl": 3, "nl": 2, "nf": 2}[layout]
    if x.ndim != expected:
        raise DataError(f"{where}: layout {layout!r} needs a {expected}-D x, got shape {x.shape}")
    if layout in ("nhw", "nl"):
        x = x[:, None]
    elif layout == "nf":
        x = x[:, :, None]
    return x


def check_x(x: Any, n: int, where: str) -> np.ndarray:
    """Inputs as float32, with as many samples as targets and every value finite."""
    try:
        x = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)
    except Exception as exc:
        raise DataError(f"{where}: x cannot be read as an array ({exc})") from None
    if x.dtype.kind not in "fiub":
        raise DataError(f"{where}: x must be numeric, got dtype {x.dtype}")
    if x.ndim < 2:
        raise DataError(f"{where}: x must have a sample axis and at least one feature axis, got shape {x.shape}")
    if len(x) != n:
        raise DataError(f"{where}: x has {len(x)} samples but y has {n}")
    x = x.astype(np.float32, copy=False)  # no copy of float32 data: nothing below writes into it
    if not np.all(np.isfinite(x)):
        raise DataError(f"{where}: x contains NaN or infinite values ({int(np.sum(~np.isfinite(x)))} of them)")
    return x


def split_rows(n: int, stratify: np.ndarray | None, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) row indices, sorted; stratified where `stratify` is given and every class has 2 rows."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    try:
        a, b = train_test_split(idx, test_size=fraction, random_state=seed, stratify=stratify)
    except ValueError:
        a, b = train_test_split(idx, test_size=fraction, random_state=seed)
    return np.sort(a), np.sort(b)


def from_arrays(
    arrays: dict[str, Any],
    name: str,
    *,
    layout: str = "auto",
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    normalize: bool = True,
    task: str = "auto",
    groups: np.ndarray | None = None,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    test_views: dict[str, Any] | None = None,
    table: bool = False,
) -> Any:
    """A Dataset from `x`, `y` (and optionally `x_val`/`y_val`, `x_test`/`y_test`): numpy arrays,
    tensors or anything numpy reads. `task` "auto" infers it from `y` (data/tasks.py); `table`: a 2-D
    x is a table of features (see to_layout)."""
    where = name
    for key in ("x", "y"):
        if key not in arrays:
            raise DataError(f"{where}: missing {key!r}")
    y_raw = as_targets(arrays["y"], where)
    task = infer_task(y_raw) if task == "auto" else task
    targets = Targets(task, y_raw, where)
    y_all = targets.y_train
    x_all = check_x(arrays["x"], len(y_all), where)
    x_all = to_layout(x_all, layout, where, table)
    if len(y_all) < MIN_SAMPLES:
        raise DataError(f"{where}: need at least {MIN_SAMPLES} samples, found {len(y_all)}")

    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split in ("val", "test"):
        if (f"x_{split}" in arrays) != (f"y_{split}" in arrays):
            raise DataError(f"{where}: 'x_{split}' and 'y_{split}' must be given together")
        if f"x_{split}" in arrays:
            at = f"{where} ({split})"
            ys = targets.read(as_targets(arrays[f"y_{split}"], at), at)
            xs = to_layout(check_x(arrays[f"x_{split}"], len(ys), at), layout, at, table)
            if xs.shape[1:] != x_all.shape[1:]:
                raise DataError(f"{where}: x_{split} samples have shape {xs.shape[1:]}, x has {x_all.shape[1:]}")
            parts[split] = (xs, ys)
    groups = groups if groups is not None and "val" in parts else None
    if groups is not None and len(groups) != len(y_all):
        raise DataError(f"{where}: {len(groups)} groups for {len(y_all)} samples")
    x_train, y_train = x_all, y_all
    for split, fraction in (("test", test_fraction), ("val", val_fraction)):
        if split not in parts:
            keep, held = split_rows(len(y_train), stratify_key(task, y_train), fraction, seed)
            parts[split] = (x_train[held], y_train[held])
            x_train, y_train = x_train[keep], y_train[keep]
            groups = groups[keep] if groups is not None else None
    if task == "classification" and len(np.unique(y_train)) < 2:
        raise DataError(f"{where}: the training split has fewer than 2 classes")

    mean: list[float] = []
    std: list[float] = []
    if normalize:
        x_train, parts, mean, std = _standardise(x_train, parts)
    target_mean: list[float] = []
    target_std: list[float] = []
    if task == "regression":
        s = y_train.std(axis=0)
        target_mean, target_std = y_train.mean(axis=0).tolist(), np.where(s > 0, s, 1.0).tolist()

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a))

    return Dataset(
        name=name,
        x_train=t(x_train.astype(np.float32, copy=False)),
        y_train=t(y_train),
        x_val=t(parts["val"][0].astype(np.float32, copy=False)),
        y_val=t(parts["val"][1]),
        x_test=t(parts["test"][0].astype(np.float32, copy=False)),
        y_test=t(parts["test"][1]),
        num_classes=targets.outputs,
        classes=targets.classes,
        mean=mean,
        std=std,
        augment=augment,
        groups=groups,
        test_views=test_views,
        task=task,
        target_mean=target_mean,
        target_std=target_std,
    )


def _standardise(x_train: np.ndarray, parts: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[Any, ...]:
    """Every channel less its training-split mean, over its training-split std (1 where it is 0)."""
    axes = (0, *range(2, x_train.ndim))
    m = x_train.mean(axis=axes, keepdims=True)
    s = x_train.std(axis=axes, keepdims=True)
    s[s == 0] = 1.0
    parts = {k: ((xv - m) / s, yv) for k, (xv, yv) in parts.items()}
    return (x_train - m) / s, parts, m.ravel().tolist(), s.ravel().tolist()
