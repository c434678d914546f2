"""The final retrain trains the returned genome the way the search trained it."""

from __future__ import annotations

import numpy as np
import torch

import nasforge.evaluate.training as evaluator_module
from nasforge.evaluate import TrainingEvaluator, TrainingOptions
from nasforge.space import LayerGraphSpace, LayerSpaceOptions


def test_retrain_uses_the_genomes_own_hyperparameters(digits, monkeypatch) -> None:
    options = LayerSpaceOptions(max_blocks=2, hparams=(("batch_size", (32,)), ("lr", (0.004,)), ("weight_decay", (0.02,))))
    space = LayerGraphSpace(digits.input_shape, digits.num_classes, options)
    genome = space.sample(np.random.default_rng(0))
    ev = TrainingEvaluator(space, digits, TrainingOptions(epochs=1, lr=0.5, batch_size=128, weight_decay=0.0))
    seen = []
    monkeypatch.setattr(evaluator_module, "train_batches", lambda model, batches, training, seed, task, **kw: seen.append(training))

    torch.manual_seed(0)
    ev.retrain(space.build(genome), seed=0, epochs=1, genome=genome)
    ev.retrain(space.build(genome), seed=0, epochs=1)  # no genome: the study's training options
    assert (seen[0].lr, seen[0].batch_size, seen[0].weight_decay) == (0.004, 32, 0.02)
    assert (seen[1].lr, seen[1].batch_size, seen[1].weight_decay) == (0.5, 128, 0.0)


def test_final_retrain_on_training_and_validation(digits, monkeypatch, tmp_path) -> None:
    import pytest

    from nasforge.api import build_study
    from nasforge.config import build_config
    from nasforge.data.dataset import Dataset
    from nasforge.errors import ConfigError

    space = LayerGraphSpace(digits.input_shape, digits.num_classes, LayerSpaceOptions(max_blocks=2))
    genome = space.sample(np.random.default_rng(0))
    ev = TrainingEvaluator(space, digits, TrainingOptions(epochs=1))
    sizes = []
    monkeypatch.setattr(evaluator_module, "train_batches",
                        lambda model, batches, training, seed, task, **kw: sizes.append((len(batches.x), len(batches.y))))
    ev.retrain(space.build(genome), seed=0, epochs=1, genome=genome)
    ev.retrain(space.build(genome), seed=0, epochs=1, genome=genome, with_validation=True)
    n_train, n_val = len(digits.x_train), len(digits.x_val)
    assert sizes == [(n_train, n_train), (n_train + n_val, n_train + n_val)]
    # Token splits padded to different lengths are padded to a common one before joining.
    tokens = Dataset("tokens", torch.ones(3, 5, dtype=torch.long), torch.zeros(3, dtype=torch.long),
                     torch.ones(2, 7, dtype=torch.long), torch.ones(2, dtype=torch.long), torch.ones(1, 7, dtype=torch.long),
                     torch.ones(1, dtype=torch.long), 2)
    joined, labels = tokens.joined()
    assert joined.shape == (5, 7) and joined[:3, 5:].eq(0).all() and joined[3:].eq(1).all()
    assert labels.tolist() == [0, 0, 0, 1, 1]
    # Asking for it without a final retrain is a config error naming both fields.
    with pytest.raises(ConfigError, match="final_data.*final_epochs"):
        build_config({"training": {"final_data": "train+val"}}, dataset="digits")
    monkeypatch.undo()
    config = build_config({"training": {"final_epochs": 1, "final_data": "train+val", "epochs": 1}}, dataset="digits",
                          trials=2, max_blocks=2, out=str(tmp_path / "run"), progress=False)
    study = build_study(config)
    study.run()
    assert study.final["val_in_training"] is True and "training + validation" in study.final["source"]


def test_label_smoothing_softens_training_and_reaches_the_evaluator(digits, tmp_path) -> None:
    import pytest

    from nasforge.api import build_study
    from nasforge.config import build_config
    from nasforge.errors import ConfigError
    from nasforge.evaluate.trainer import train

    def confidence(smoothing: float) -> float:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
        train(model, digits.x_train, digits.y_train, TrainingOptions(epochs=20, batch_size=64, lr=0.05, weight_decay=0.0,
                                                                             label_smoothing=smoothing), seed=0)
        with torch.no_grad():
            return float(model(digits.x_train).softmax(-1).max(-1).values.mean())

    plain, smoothed = confidence(0.0), confidence(0.3)
    # Smoothing 0.3 over 10 classes puts the optimum at 0.73 for the target; plain cross-entropy pushes towards 1.
    assert plain > 0.9 and smoothed < 0.75

    study = build_study(build_config({"training": {"label_smoothing": 0.2}}, dataset="digits", out=str(tmp_path / "run"),
                                     progress=False))
    assert study.evaluator.training.label_smoothing == 0.2
    text = tmp_path / "corpus.txt"
    text.write_text("to be or not to be. " * 100)
    with pytest.raises(ConfigError, match="training.label_smoothing"):
        build_study(build_config({"training": {"label_smoothing": 0.1}, "space": {"name": "sequence"}},
                                 dataset=f"charlm:{text}", reward="neg_loss", out=str(tmp_path / "lm"), progress=False))
