"""Datasets: built-ins, user files, splits, and clear errors for bad data before any training."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from nasforge.data import load_dataset
from nasforge.errors import DataError


def test_digits_splits_are_disjoint_fixed_and_stratified(digits) -> None:
    sizes = digits.summary()["sizes"]
    assert sum(sizes.values()) == 1797 and digits.input_shape == (1, 8, 8) and digits.num_classes == 10
    again = load_dataset("digits")
    assert np.array_equal(again.y_val.numpy(), digits.y_val.numpy())
    assert len(np.unique(digits.y_test.numpy())) == 10


def test_mnist1d_uses_its_own_test_split() -> None:
    data = load_dataset("mnist1d")
    assert data.input_shape == (1, 40)
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (3200, 800, 1000)


def _npz(tmp_path, **arrays):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    return str(path)


def test_user_npz_images_signals_and_predefined_splits(tmp_path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(3, 2, size=(100, 12, 12)).astype(np.float32)
    y = np.repeat(["cat", "dog"], 50)
    data = load_dataset(_npz(tmp_path, x=x, y=y))
    assert data.input_shape == (1, 12, 12) and data.classes == ["cat", "dog"]
    assert abs(float(data.x_train.mean())) < 1e-4 and abs(float(data.x_train.std()) - 1) < 0.01  # standardised
    sig = rng.normal(size=(60, 2, 50))
    data = load_dataset(_npz(tmp_path, x=sig, y=np.arange(60) % 3, x_test=sig[:9], y_test=np.arange(9) % 3))
    assert data.input_shape == (2, 50) and len(data.y_test) == 9


def test_user_csv(tmp_path) -> None:
    path = tmp_path / "t.csv"
    rows = ["a,b,c,target"] + [f"{i},{i * 2},{i % 5},{i % 2}" for i in range(40)]
    path.write_text("\n".join(rows))
    data = load_dataset(str(path), label_column="target")
    # Columns are features: each a channel of length 1 (and standardised on its own).
    assert data.input_shape == (3, 1) and data.num_classes == 2
    with pytest.raises(DataError, match="no label column 'label'"):
        load_dataset(str(path))


@pytest.mark.parametrize("arrays, message", [
    (dict(x=np.full((20, 5), np.nan), y=np.arange(20) % 2), "NaN"),
    (dict(x=np.zeros((20, 5)), y=np.zeros(20)), "at least 2 classes"),
    (dict(x=np.zeros((20, 5)), y=np.arange(19) % 2), "19"),
    (dict(x=np.zeros((20, 1, 2, 3, 4)), y=np.arange(20) % 2), "2-D"),
    (dict(x=np.zeros((20, 5))), "missing array 'y'"),
    (dict(x=np.zeros((20, 5)), y=np.where(np.arange(20) == 3, np.nan, np.arange(20) % 2)), "NaN or infinite .first at sample 3"),
    (dict(x=np.zeros((20, 5)), y=np.arange(20) % 2, x_test=np.zeros((4, 6)), y_test=np.arange(4) % 2), "shape"),
    (dict(x=np.zeros((20, 5)), y=np.arange(20) % 2, x_val=np.zeros((4, 5))), "together"),
])
def test_bad_data_is_named(tmp_path, arrays, message) -> None:
    with pytest.raises(DataError, match=message):
        load_dataset(_npz(tmp_path, **arrays))


def test_missing_and_unknown_sources() -> None:
    with pytest.raises(DataError, match="not found"):
        load_dataset("/nonexistent/data.npz")
    with pytest.raises(DataError, match="built-in"):
        load_dataset("imagenet")


def test_cli_bad_data_exits_2_before_training(tmp_path) -> None:
    path = _npz(tmp_path, x=np.zeros((20, 5)), y=np.zeros(20))
    out = subprocess.run([sys.executable, "-m", "nasforge.cli", "search", "--dataset", path, "--out", str(tmp_path / "r")],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "at least 2 classes" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "r").exists()
