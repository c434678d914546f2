"""Weight inheritance beyond the layer-graph space, and where it is on by default."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nasforge.api import default_inherit
from nasforge.errors import ConfigError
from nasforge.evaluate.evaluator import Evaluator
from nasforge.evaluate.inherit import inherit
from nasforge.evaluate.training import TrainingEvaluator
from nasforge.space import CellSpace


def test_cell_child_inherits_every_unchanged_tensor() -> None:
    # The cell space names its modules by position (module_map None): a module inherits from its namesake.
    space, rng = CellSpace((1, 8, 8), 10, channels=8), np.random.default_rng(0)
    parent = space.sample(rng)
    child, _ = space.mutate(parent, rng)
    torch.manual_seed(0)
    parent_state = {k: v + 1 for k, v in space.build(parent).state_dict().items()}  # unlike any fresh init
    torch.manual_seed(1)
    model = space.build(child)
    report = inherit(space, model, child, parent, parent_state)
    state = model.state_dict()
    same = [k for k, v in state.items() if k in parent_state and parent_state[k].shape == v.shape]
    assert report.copied == len(same) > 0
    assert all(torch.equal(state[k], parent_state[k]) for k in same)


def test_inheritance_is_on_by_default_for_trained_classifiers_only() -> None:
    class Other(Evaluator):
        def evaluate(self, genome, seed, epochs=None, warmstart=None, prune_below=None):
            raise NotImplementedError

    trained = TrainingEvaluator.__new__(TrainingEvaluator)  # only its type matters here
    assert default_inherit(None, trained) is True
    assert default_inherit(None, Other()) is False
    assert default_inherit(False, trained) is False and default_inherit(True, trained) is True
    # Asking for it where the evaluator cannot do it is a config error, not a run of failed trials.
    with pytest.raises(ConfigError, match="training.inherit"):
        default_inherit(True, Other())
