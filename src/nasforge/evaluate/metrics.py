"""Classification metrics and the rewards a study can maximise."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int, loss: float) -> dict[str, Any]:
    """Accuracy, macro precision / recall / F1, loss and the confusion matrix (rows: true class)."""
    # Imported here: sklearn.metrics costs ~2 s to import, which every CLI command would pay.
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = list(range(num_classes))
    precision, recall, f1, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    return {
        "accuracy": float(np.mean(y_true == y_pred)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "loss": float(loss),
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


# Every reward is maximised; the loss enters negated.
REWARDS: dict[str, Callable[[dict[str, Any]], float]] = {
    "accuracy": lambda m: m["accuracy"],
    "precision": lambda m: m["precision"],
    "recall": lambda m: m["recall"],
    "f1": lambda m: m["f1"],
    "neg_loss": lambda m: -m["loss"],
}
