"""Tasks and their targets: single-label classification, multi-label classification, regression.

The task decides what a network's head outputs (classes, labels or targets), which loss trains it,
which metrics score it and how targets are checked. It is inferred from the training targets and
can always be given instead (`dataset.task`):

- 1-D integers, strings or booleans -> classification (one label per sample);
- 1-D floats that are not whole numbers -> regression; whole-number floats stay labels (a saved
  integer array often comes back as floats) unless there are more than `MAX_FLOAT_CLASSES` distinct
  values, which reads as a measured quantity (the diabetes progression score: 214 values) -> regression;
- 2-D with values only 0 and 1 -> multi-label (one column per label); other 2-D -> regression with
  one output per column; a 2-D array of one column is read as 1-D.

Every problem with the targets is a DataError naming the split and what is wrong.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataError

TASKS = ("classification", "multilabel", "regression")
# Whole-number float targets with more distinct values than this are read as a regression target.
MAX_FLOAT_CLASSES = 50


def as_targets(y: Any, where: str) -> np.ndarray:
    """Targets as a numpy array; a column vector (N x 1) as 1-D."""
    try:
        y = np.asarray(y.detach().cpu().numpy() if hasattr(y, "detach") else y)
    except Exception as exc:  # a ragged list, an object that is not array-like
        raise DataError(f"{where}: y cannot be read as an array ({exc})") from None
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim not in (1, 2):
        raise DataError(f"{where}: y must be 1-D (one label or value per sample) or 2-D (samples x labels or targets), "
                        f"got shape {y.shape}")
    return y


def infer_task(y: np.ndarray) -> str:
    """The task the training targets `y` (from `as_targets`) look like; see the module docstring."""
    if y.ndim == 2:
        if y.dtype.kind in "biuf" and np.all(np.isin(y, (0, 1))):
            return "multilabel"
        return "regression"
    if y.dtype.kind == "f":
        finite = y[np.isfinite(y)]
        if not np.all(finite == np.round(finite)) or len(np.unique(finite)) > MAX_FLOAT_CLASSES:
            return "regression"
    return "classification"


def _finite(y: np.ndarray, where: str, what: str) -> None:
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        bad = np.flatnonzero(~np.isfinite(y).reshape(len(y), -1).all(axis=1))
        raise DataError(f"{where}: {len(bad)} {what} are NaN or infinite (first at sample {int(bad[0])}); "
                        "drop or fill those samples")


def class_labels(y: np.ndarray, classes: np.ndarray | None, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Single-label targets as class indices 0..C-1 (`classes` from the training split, or found here)."""
    if y.ndim != 1:
        raise DataError(f"{where}: classification needs one label per sample (1-D y), got shape {y.shape}; "
                        "for several labels per sample use task multilabel")
    if y.dtype.kind == "f":
        _finite(y, where, "labels")
        if not np.all(y == np.round(y)):
            raise DataError(f"{where}: float labels must be finite whole numbers (or set task: regression)")
        y = y.astype(np.int64)
    elif y.dtype.kind not in "biuUSO":
        raise DataError(f"{where}: labels must be integers, strings or booleans, got dtype {y.dtype}")
    if y.dtype.kind == "O" and any(v is None or (isinstance(v, float) and not np.isfinite(v)) for v in y.tolist()):
        raise DataError(f"{where}: some labels are missing (None or NaN)")
    if classes is None:
        classes = np.unique(y)
    index = {c: i for i, c in enumerate(classes.tolist())}
    unknown = set(np.unique(y).tolist()) - set(index)
    if unknown:
        raise DataError(f"{where}: labels {sorted(unknown, key=str)[:5]} do not occur in the training data")
    return np.array([index[v] for v in y.tolist()], dtype=np.int64), classes


def label_matrix(y: np.ndarray, width: int | None, where: str) -> np.ndarray:
    """Multi-label targets: samples x labels of 0 / 1, as float32 (what binary cross-entropy takes)."""
    if y.ndim != 2:
        raise DataError(f"{where}: multi-label targets are samples x labels (2-D) of 0 and 1, got shape {y.shape}")
    if y.dtype.kind not in "biuf":
        raise DataError(f"{where}: multi-label targets must be numbers 0 / 1, got dtype {y.dtype}")
    _finite(y.astype(np.float64), where, "label rows")
    if not np.all(np.isin(y, (0, 1))):
        raise DataError(f"{where}: multi-label targets must be 0 or 1 (found {sorted(set(np.unique(y).tolist()) - {0, 1})[:5]})")
    if width is not None and y.shape[1] != width:
        raise DataError(f"{where}: {y.shape[1]} label columns, the training split has {width}")
    return y.astype(np.float32)


def regression_targets(y: np.ndarray, width: int | None, where: str) -> np.ndarray:
    """Regression targets: samples x outputs, float32, finite."""
    if y.dtype.kind not in "biuf":
        raise DataError(f"{where}: regression targets must be numbers, got dtype {y.dtype}")
    y = y.astype(np.float64)
    _finite(y, where, "targets")
    y = y.reshape(len(y), -1)
    if width is not None and y.shape[1] != width:
        raise DataError(f"{where}: {y.shape[1]} target columns, the training split has {width}")
    return y.astype(np.float32)


class Targets:
    """How the targets of one dataset are read: the task and what the training split fixed (class
    names, label count, target count), so that validation and test targets are read the same way."""

    def __init__(self, task: str, y_train: np.ndarray, where: str):
        if task not in TASKS:
            raise DataError(f"{where}: unknown task {task!r}; choose from {', '.join(TASKS)}")
        self.task = task
        self.classes: list[Any]
        if task == "classification":
            self.y_train, classes = class_labels(y_train, None, where)
            self._classes = classes
            self.classes = classes.tolist()
            if len(self.classes) < 2:
                raise DataError(f"{where}: need at least 2 classes, found {len(self.classes)} ({self.classes})")
        elif task == "multilabel":
            self.y_train = label_matrix(y_train, None, where)
            self.classes = [f"label_{i}" for i in range(self.y_train.shape[1])]
        else:
            self.y_train = regression_targets(y_train, None, where)
            width = self.y_train.shape[1]
            self.classes = ["target"] if width == 1 else [f"target_{i}" for i in range(width)]

    @property
    def outputs(self) -> int:
        """Width of the network's head: classes, labels or regression targets."""
        return len(self.classes)

    def read(self, y: np.ndarray, where: str) -> np.ndarray:
        """Another split's targets, read against the training split's."""
        if self.task == "classification":
            return class_labels(y, self._classes, where)[0]
        if self.task == "multilabel":
            return label_matrix(y, self.outputs, where)
        return regression_targets(y, self.outputs, where)


def stratify_key(task: str, y: np.ndarray) -> np.ndarray | None:
    """What a split is stratified by: the class for classification, nothing for the other tasks."""
    if task != "classification":
        return None
    counts = np.bincount(y)
    return y if counts[counts > 0].min() >= 2 else None
