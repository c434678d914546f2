"""Metrics of each task and the rewards a study can maximise.

Metrics are plain numbers computed from numpy arrays (scikit-learn's definitions):
- classification: accuracy, macro precision / recall / F1, loss, the confusion matrix (rows: true
  class); with `scores`, also AUC (one-vs-rest, macro over the classes present) and average precision;
- multi-label (threshold 0.5 on each label's probability): accuracy (every label of a sample right),
  label_accuracy (share of single labels right), macro precision / recall / F1, loss; with
  `scores`, AUC and average precision macro over the labels with both values present. No confusion
  matrix: one per label would say less than the per-label scores;
- regression (in the targets' own units): rmse, mae, r2, loss (on standardised targets).

A reward is one of these with a direction: every reward is maximised, so a metric to minimise
enters negated (`neg_rmse`). `CustomMetric` wraps the user's `metric(y_true, y_score)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import TrialFailure


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int, loss: float,
                           probabilities: np.ndarray | None = None) -> dict[str, Any]:
    """Accuracy, macro precision / recall / F1, loss and the confusion matrix (rows: true class);
    AUC and average precision too when `probabilities` (samples x classes) are given."""
    # Imported here: sklearn.metrics costs ~2 s to import, which every CLI command would pay.
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = list(range(num_classes))
    precision, recall, f1, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    out = {
        "accuracy": float(np.mean(y_true == y_pred)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "loss": float(loss),
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }
    if probabilities is not None:
        onehot = np.eye(num_classes, dtype=np.int64)[y_true]
        # Binary: the AUC of class 1 alone (one-vs-rest of class 0 is the same curve mirrored).
        columns = slice(None) if num_classes > 2 else slice(1, 2)
        out.update(ranking_metrics(onehot[:, columns], probabilities[:, columns]))
    return out


def ranking_metrics(y_true: np.ndarray, scores: np.ndarray) -> dict[str, float | None]:
    """AUC and average precision, macro over the columns (labels, or one-vs-rest classes) whose true
    values hold both 0 and 1; None when no column does (e.g. a validation split of one class)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    usable = [j for j in range(y_true.shape[1]) if 0 < y_true[:, j].sum() < len(y_true)]
    if not usable:
        return {"auc": None, "average_precision": None}
    return {"auc": float(np.mean([roc_auc_score(y_true[:, j], scores[:, j]) for j in usable])),
            "average_precision": float(np.mean([average_precision_score(y_true[:, j], scores[:, j]) for j in usable]))}


def multilabel_metrics(y_true: np.ndarray, probabilities: np.ndarray, loss: float, scores: bool = False) -> dict[str, Any]:
    from sklearn.metrics import precision_recall_fscore_support

    y_true = y_true.astype(np.int64)
    y_pred = (probabilities >= 0.5).astype(np.int64)
    precision, recall, f1, _ = precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)
    out: dict[str, Any] = {
        "accuracy": float(np.mean(np.all(y_true == y_pred, axis=1))),
        "label_accuracy": float(np.mean(y_true == y_pred)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "loss": float(loss),
    }
    if scores:
        out.update(ranking_metrics(y_true, probabilities))
    return out


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray, loss: float) -> dict[str, Any]:
    """RMSE, MAE and R² (averaged over targets), in the targets' units; `loss` as trained (standardised)."""
    y_true, y_pred = y_true.reshape(len(y_true), -1).astype(np.float64), y_pred.reshape(len(y_pred), -1).astype(np.float64)
    error = y_pred - y_true
    variance = ((y_true - y_true.mean(axis=0)) ** 2).sum(axis=0)
    residual = (error**2).sum(axis=0)
    # R² of a constant target is undefined; scikit-learn's convention: 1 if predicted exactly, else 0.
    r2 = np.where(variance > 0, 1 - residual / np.where(variance > 0, variance, 1), np.where(residual == 0, 1.0, 0.0))
    return {
        "rmse": float(np.mean(np.sqrt((error**2).mean(axis=0)))),
        "mae": float(np.mean(np.abs(error))),
        "r2": float(np.mean(r2)),
        "loss": float(loss),
    }


@dataclass(frozen=True)
class Reward:
    """A metric the search maximises: `sign` x metrics[key]. `tasks`: where it means something;
    `scores`: it needs AUC / average precision computed (ranking metrics)."""

    name: str
    key: str
    sign: int
    tasks: tuple[str, ...]
    scores: bool = False

    def __call__(self, metrics: dict[str, Any]) -> float:
        value = metrics.get(self.key)
        if value is None or not math.isfinite(value):
            raise TrialFailure(f"reward {self.name}: the metric {self.key!r} is undefined on the validation split "
                               f"(got {value!r}; AUC and average precision need both values of a label present)")
        return self.sign * float(value)


LABELS = ("classification", "multilabel")
ALL_TASKS = ("classification", "multilabel", "regression")
REWARDS: dict[str, Reward] = {
    "accuracy": Reward("accuracy", "accuracy", 1, LABELS),
    "precision": Reward("precision", "precision", 1, LABELS),
    "recall": Reward("recall", "recall", 1, LABELS),
    "f1": Reward("f1", "f1", 1, LABELS),
    "auc": Reward("auc", "auc", 1, LABELS, scores=True),
    "average_precision": Reward("average_precision", "average_precision", 1, LABELS, scores=True),
    "neg_loss": Reward("neg_loss", "loss", -1, ALL_TASKS),
    "neg_rmse": Reward("neg_rmse", "rmse", -1, ("regression",)),
    "neg_mae": Reward("neg_mae", "mae", -1, ("regression",)),
    "r2": Reward("r2", "r2", 1, ("regression",)),
}
# What "auto" means for each task.
DEFAULT_REWARD = {"classification": "accuracy", "multilabel": "f1", "regression": "neg_rmse"}
DIRECTIONS = ("max", "min")


class CustomMetric:
    """The user's `metric(y_true, y_score) -> float`, recorded under `name` and maximised or
    minimised (`direction`). y_true: class indices (classification), samples x labels of 0/1
    (multi-label) or the targets in their units (regression; 1-D for one target); y_score: the
    probability of class 1 (binary), samples x classes probabilities (several classes), samples x
    labels probabilities (multi-label), or the predictions (regression, shaped as y_true).

    Must pickle (a module-level function) to run in pool or Ray workers."""

    def __init__(self, fn: Callable[[np.ndarray, np.ndarray], float], direction: str = "max", name: str | None = None):
        if not callable(fn):
            raise TypeError(f"metric must be callable, got {type(fn).__name__}")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be 'max' or 'min', got {direction!r}")
        self.fn, self.direction = fn, direction
        self.name: str = name or str(getattr(fn, "__name__", "metric"))
        if self.name == "<lambda>":
            self.name = "metric"

    @property
    def reward(self) -> Reward:
        return Reward(self.name, self.name, 1 if self.direction == "max" else -1, ALL_TASKS)

    def __call__(self, y_true: np.ndarray, y_score: np.ndarray) -> float:
        try:
            value = float(self.fn(y_true, y_score))
        except Exception as exc:  # the user's code: whatever it raises fails this trial, with its message
            raise TrialFailure(f"metric {self.name!r} raised {type(exc).__name__}: {exc}") from exc
        if not math.isfinite(value):
            raise TrialFailure(f"metric {self.name!r} returned {value}")
        return value

    def __repr__(self) -> str:
        return f"CustomMetric({self.name!r}, direction={self.direction!r})"
