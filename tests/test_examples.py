"""The examples under examples/ run (on small budgets) and print what they promise."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from conftest import REPO


def _example(name: str):
    path = REPO / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"nasforge_example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # so that its classes pickle for DataLoader / executor workers
    spec.loader.exec_module(module)
    return module


def test_regression_from_numpy_arrays_against_ridge(tmp_path, capsys) -> None:
    study = _example("regression_diabetes").main(["--trials", "2", "--epochs", "3", "--out", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert "nasforge  test RMSE" in out and "ridge     test RMSE" in out
    assert study.store.get("dataset")["task"] == "regression" and study.evaluator.reward == "neg_rmse"


def test_multilabel_search(tmp_path, capsys) -> None:
    study = _example("multilabel").main(["--trials", "2", "--epochs", "2", "--out", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert "task multilabel, 6 labels" in out and "logistic  test average precision" in out
    assert study.final["test"]["average_precision"] > 0.2


def test_own_training_loop_with_focal_loss_and_auc(tmp_path, capsys) -> None:
    own, builtin = _example("own_training_focal_auc").main(["--trials", "3", "--epochs", "2", "--out", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert "own loop, focal loss" in out and "built-in, cross-entropy" in out
    assert own.evaluator.reward == "auc" and own.best.reward == own.best.metrics["auc"] and 0.5 < own.final["test"]["auc"] <= 1


@pytest.mark.parametrize("workers", [0, 1])
def test_image_folder_as_a_torchvision_style_dataset(tmp_path, capsys, workers) -> None:
    study = _example("image_folder_dataset").main(["--per-class", "12", "--trials", "2", "--epochs", "1",
                                                   "--workers", str(workers), "--out", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert "36 pictures in 3 classes, streamed: True, input [3, 32, 32]" in out
    assert [t.status for t in study.trials] == ["complete", "complete"]
