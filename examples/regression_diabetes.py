"""Regression from numpy arrays: scikit-learn's diabetes data (442 patients, 10 measurements, disease
progression after one year), searched for the network with the lowest validation RMSE, against a
ridge regression fitted on the same rows.

    python examples/regression_diabetes.py --trials 20 --epochs 60 --out runs/diabetes

The task (regression) is inferred from the targets; `reward="neg_rmse"` says what to maximise (minus the
RMSE, in the targets' own units). Networks learn standardised targets; the scores are in the data's units.
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.linear_model import RidgeCV

import nasforge
from nasforge.data.objects import load_objects


def ridge_baseline(x: np.ndarray, y: np.ndarray, seed: int = 0) -> float:
    """Test RMSE of a ridge regression (alpha by cross-validation) on nasforge's own splits: fitted on
    the training and validation rows, scored on the test rows the search never saw."""
    data = load_objects((x, y), seed=seed)  # the same splits and standardisation as the search's
    fit_x = np.concatenate([data.x_train.numpy(), data.x_val.numpy()]).reshape(-1, x.shape[1])
    fit_y = np.concatenate([data.y_train.numpy(), data.y_val.numpy()])[:, 0]
    ridge = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(fit_x, fit_y)
    pred = ridge.predict(data.x_test.numpy().reshape(-1, x.shape[1]))
    return float(np.sqrt(np.mean((pred - data.y_test.numpy()[:, 0]) ** 2)))


def main(argv: list[str] | None = None) -> nasforge.Study:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--out", default="runs/diabetes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    diabetes = load_diabetes()
    x, y = diabetes.data, diabetes.target
    study = nasforge.search(
        data=(x, y), reward="neg_rmse", trials=args.trials, epochs=args.epochs, batch_size=32, lr=3e-3,
        final_epochs=args.epochs, final_data="train+val",  # the returned network learns from train + val, like ridge
        max_blocks=3, dense_units=(16, 32, 64), channels=(8, 16), strategy="evolution", population=6, sample_size=2,
        seed=args.seed, out=args.out, progress=False,
    )
    test = study.final["test"]
    print(f"nasforge  test RMSE {test['rmse']:.2f}  MAE {test['mae']:.2f}  R2 {test['r2']:.3f}  "
          f"(best of {len(study.trials)} trials, validation RMSE {-study.best.reward:.2f})")
    print(f"ridge     test RMSE {ridge_baseline(x, y):.2f}  (RidgeCV on the same training + validation rows)")
    print(f"targets   std {y.std():.2f} (the RMSE of always predicting the mean)")
    return study


if __name__ == "__main__":
    main()
