"""K-fold cross-validation of candidates (training.cv_folds): folds, scores, and what it refuses."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from nasforge.evaluate import TrainingEvaluator, TrainingOptions
from nasforge.evaluate.crossval import extra_folds
from nasforge.space import LayerGraphSpace, LayerSpaceOptions


def test_folds_partition_the_training_rows_and_keep_validation_in_training(digits) -> None:
    n_train, n_val = len(digits.y_train), len(digits.y_val)
    folds = extra_folds(digits, 4, seed=0)
    assert len(folds) == 3
    held = torch.cat([h for _, h in folds]).sort().values
    assert torch.equal(held, torch.arange(n_train))  # every training row is held out exactly once
    for rows, h in folds:
        assert not set(rows.tolist()) & set(h.tolist())
        assert set(range(n_train, n_train + n_val)) <= set(rows.tolist())  # the validation split trains here
        # Stratified: every class is held out in proportion (digits: ~36 per class over 3 folds).
        counts = np.bincount(digits.y_train[h].numpy(), minlength=10)
        assert counts.min() >= 0.8 * counts.max()


def test_grouped_folds_never_split_a_group(digits) -> None:
    groups = np.array([f"speaker{i % 5}" for i in range(len(digits.y_train))])
    data = dataclasses.replace(digits, groups=groups)
    folds = extra_folds(data, 6, seed=0)
    assert len(folds) == 5
    for rows, held in folds:
        train_groups = set(groups[rows[rows < len(groups)].numpy()].tolist())
        held_groups = set(groups[held.numpy()].tolist())
        assert len(held_groups) == 1 and not held_groups & train_groups
    with pytest.raises(ValueError, match="6 groups"):
        extra_folds(data, 7, seed=0)
    with pytest.raises(ValueError, match="at least 3"):
        extra_folds(data, 2, seed=0)


def test_cross_validated_score_is_the_mean_over_folds_with_fold_one_unchanged(digits) -> None:
    space = LayerGraphSpace(digits.input_shape, digits.num_classes, LayerSpaceOptions(max_blocks=2))
    genome = space.sample(np.random.default_rng(1))
    options = TrainingOptions(epochs=2)
    plain = TrainingEvaluator(space, digits, options).evaluate(genome, seed=3)
    cv = TrainingEvaluator(space, digits, options, folds=extra_folds(digits, 4, seed=0)).evaluate(genome, seed=3)
    assert cv.status == "complete" and len(cv.metrics["cv_accuracy"]) == 4
    # Fold 1 is the ordinary split: same score and the same weights the trial keeps.
    assert cv.metrics["cv_accuracy"][0] == pytest.approx(plain.metrics["accuracy"])
    assert all(torch.equal(a, b) for a, b in zip(cv.state_dict.values(), plain.state_dict.values(), strict=True))
    assert cv.metrics["accuracy"] == pytest.approx(np.mean(cv.metrics["cv_accuracy"]))
    assert cv.reward == pytest.approx(cv.metrics["accuracy"])
    assert len(set(cv.metrics["cv_accuracy"])) > 1  # the other folds were trained and scored on their own rows
    # The confusion matrix counts every held-out row once: the validation split and all training rows.
    assert np.sum(cv.metrics["confusion"]) == len(digits.y_train) + len(digits.y_val)
    assert cv.train_seconds > plain.train_seconds


def test_cv_config_errors_name_the_field(digits, tmp_path) -> None:
    from nasforge.api import build_study
    from nasforge.config import build_config
    from nasforge.errors import ConfigError

    with pytest.raises(ConfigError, match="cv_folds"):
        build_config({"training": {"cv_folds": 2}}, dataset="digits")
    with pytest.raises(ConfigError, match="inherit"):
        build_config({"training": {"cv_folds": 3, "inherit": True}}, dataset="digits")
    with pytest.raises(ConfigError, match="early_stop"):
        build_config({"training": {"cv_folds": 3, "early_stop": "median"}}, dataset="digits")
    with pytest.raises(ConfigError, match="cv_folds.*halving"):
        build_config({"training": {"cv_folds": 3}, "fidelity": {"name": "halving"}}, dataset="digits")
    # Weight inheritance is on by default for classifiers, off under cross-validation.
    study = build_study(build_config({"training": {"cv_folds": 3, "epochs": 1}}, dataset="digits", trials=1, max_blocks=2,
                                     out=str(tmp_path / "run"), progress=False))
    assert study.inherit is False
