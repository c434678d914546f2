"""K-fold cross-validation of every candidate (`training.cv_folds: K`).

One validation split ranks candidates by how they do on that split alone. Where it resembles the
training data too closely to tell them apart (FSDD with a random 20% of the same five voices: ~99%
for every good network), or is one small, noisy group (one validation speaker), the mean over K
folds is the better ranking: it is what `benchmarks/fsdd_splits.py --exclude-speaker` measures by
hand, now done for every candidate, at K times the training cost.

Fold 1 is the dataset's own (train, validation) split, so the trial keeps the weights and curve it
would have had without cross-validation; folds 2..K split the training rows further. With groups
(`Dataset.groups`, FSDD's speakers when the validation split is a whole speaker) no group is ever
on both sides of a fold (scikit-learn's GroupKFold); without, the folds are stratified by class.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..data.dataset import Dataset


def extra_folds(data: Dataset, k: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Folds 2..k as (training rows, validation rows) of the pool [x_train; x_val]: each holds out a
    share of the training split and trains on the rest of it plus the validation split. ValueError
    (with the reason) when the data cannot be split k ways."""
    from sklearn.model_selection import GroupKFold, StratifiedKFold

    if k < 3:
        raise ValueError(f"{k} folds: need at least 3 (the validation split and two or more of the training split)")
    n_train, n_val = len(data.y_train), len(data.y_val)
    y = data.y_train.numpy()
    rows = np.arange(n_train)
    if data.groups is not None:
        groups = np.asarray(data.groups)
        n_groups = len(np.unique(groups))
        if n_groups < k - 1:
            raise ValueError(f"{k} folds need {k - 1} groups in the training split besides the validation split's; "
                             f"it has {n_groups} ({', '.join(map(str, sorted(np.unique(groups).tolist())))})")
        splits = GroupKFold(n_splits=k - 1).split(rows, y, groups)
    elif getattr(data, "task", "classification") != "classification":
        from sklearn.model_selection import KFold

        splits = KFold(n_splits=k - 1, shuffle=True, random_state=seed).split(rows)
    else:
        counts = np.bincount(y)
        smallest = int(counts[counts > 0].min())
        if smallest < k - 1:
            raise ValueError(f"{k} folds need {k - 1} training samples of every class; the rarest class has {smallest}")
        splits = StratifiedKFold(n_splits=k - 1, shuffle=True, random_state=seed).split(rows, y)
    val_rows = np.arange(n_train, n_train + n_val)
    return [(torch.from_numpy(np.concatenate([np.sort(keep), val_rows])), torch.from_numpy(np.sort(held)))
            for keep, held in splits]


def summarize(scores: list[dict[str, Any]]) -> dict[str, Any]:
    """One metrics dict from per-fold scores: each scalar is the unweighted mean over folds (every
    fold, e.g. every speaker, counts the same), the confusion matrix their sum, and `cv_accuracy` (or
    `cv_rmse`) / `cv_loss` list the folds' own figures (fold 1, the validation split, first)."""
    numbers = [k for k, v in scores[0].items() if isinstance(v, (int, float)) and all(isinstance(s.get(k), (int, float))
                                                                                       for s in scores)]
    out: dict[str, Any] = {key: float(np.mean([s[key] for s in scores])) for key in numbers}
    if all("confusion" in s for s in scores):
        out["confusion"] = np.sum([np.asarray(s["confusion"]) for s in scores], axis=0).tolist()
    for key in ("accuracy", "rmse", "loss"):
        if key in numbers:
            out[f"cv_{key}"] = [float(s[key]) for s in scores]
    return out
