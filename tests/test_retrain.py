"""The final retrain trains the returned genome the way the search trained it."""

from __future__ import annotations

import numpy as np
import torch

import nasforge.evaluate.evaluator as evaluator_module
from nasforge.evaluate import TrainingEvaluator, TrainingOptions
from nasforge.space import LayerGraphSpace, LayerSpaceOptions


def test_retrain_uses_the_genomes_own_hyperparameters(digits, monkeypatch) -> None:
    options = LayerSpaceOptions(max_blocks=2, hparams=(("batch_size", (32,)), ("lr", (0.004,)), ("weight_decay", (0.02,))))
    space = LayerGraphSpace(digits.input_shape, digits.num_classes, options)
    genome = space.sample(np.random.default_rng(0))
    ev = TrainingEvaluator(space, digits, TrainingOptions(epochs=1, lr=0.5, batch_size=128, weight_decay=0.0))
    seen = []
    monkeypatch.setattr(evaluator_module, "train", lambda model, x, y, training, seed, epochs, **kw: seen.append(training))

    torch.manual_seed(0)
    ev.retrain(space.build(genome), seed=0, epochs=1, genome=genome)
    ev.retrain(space.build(genome), seed=0, epochs=1)  # no genome: the study's training options
    assert (seen[0].lr, seen[0].batch_size, seen[0].weight_decay) == (0.004, 32, 0.02)
    assert (seen[1].lr, seen[1].batch_size, seen[1].weight_decay) == (0.5, 128, 0.0)
