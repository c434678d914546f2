"""Multi-label classification: every sample may carry several of k labels at once
(scikit-learn's make_multilabel_classification: 1,000 samples, 40 features, 6 labels).

    python examples/multilabel.py --trials 20 --epochs 20 --out runs/multilabel

The task is inferred from the targets (a samples x labels array of 0 and 1): networks end in one
logit per label, train with binary cross-entropy, and are scored by macro F1, AUC and average
precision over the labels; here the search maximises average precision. Printed beside: one logistic
regression per label on the same rows.
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.datasets import make_multilabel_classification
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.multiclass import OneVsRestClassifier

import nasforge
from nasforge.data.objects import load_objects


def logistic_baseline(x: np.ndarray, y: np.ndarray) -> float:
    """Test macro average precision of one-vs-rest logistic regression on nasforge's own splits."""
    data = load_objects((x, y))  # the same splits and standardisation as the search's
    fit_x = np.concatenate([data.x_train.numpy(), data.x_val.numpy()]).reshape(-1, x.shape[1])
    fit_y = np.concatenate([data.y_train.numpy(), data.y_val.numpy()])
    model = OneVsRestClassifier(LogisticRegression(max_iter=2000)).fit(fit_x, fit_y)
    scores = model.predict_proba(data.x_test.numpy().reshape(-1, x.shape[1]))
    truth = data.y_test.numpy()
    return float(np.mean([average_precision_score(truth[:, j], scores[:, j]) for j in range(truth.shape[1])]))


def main(argv: list[str] | None = None) -> nasforge.Study:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", default="runs/multilabel")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    x, y = make_multilabel_classification(n_samples=1000, n_features=40, n_classes=6, n_labels=2, random_state=0)
    study = nasforge.search(
        data=(x, y), reward="average_precision", trials=args.trials, epochs=args.epochs, batch_size=32,
        max_blocks=3, dense_units=(32, 64, 128), channels=(8, 16), strategy="evolution", population=6, sample_size=2,
        seed=args.seed, out=args.out, progress=False,
    )
    test = study.final["test"]
    print(f"task {study.store.get('dataset')['task']}, {study.store.get('dataset')['num_classes']} labels")
    print(f"nasforge  test average precision {test['average_precision']:.3f}  AUC {test['auc']:.3f}  macro F1 {test['f1']:.3f}  "
          f"exact match {test['accuracy']:.3f}")
    print(f"logistic  test average precision {logistic_baseline(x, y):.3f}  (one-vs-rest, same training + validation rows)")
    return study


if __name__ == "__main__":
    main()
