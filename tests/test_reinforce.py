"""REINFORCE: it learns, it resumes exactly, it works on any space with decisions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nasforge.errors import ConfigError
from nasforge.space import CellSpace, LayerGraphSpace, LayerSpaceOptions
from nasforge.strategy import STRATEGIES, Reinforce
from nasforge.strategy.base import Observation
from nasforge.strategy.random import RandomSearch


def _toy_reward(space: CellSpace, genome, rng: np.random.Generator) -> float:
    # Edge 1<-0 = nor_conv_3x3 is worth a lot; everything else is noise.
    return float(space.encode(genome)[0] == 3) + 0.1 * rng.random()


@pytest.mark.parametrize("controller", ["independent", "lstm"])
def test_raises_the_probability_of_the_best_decision(controller: str) -> None:
    space, noise = CellSpace(), np.random.default_rng(1)
    strategy = Reinforce(space, seed=0, controller=controller)
    picks = []
    for trial in range(1, 151):
        cand = strategy.ask()
        picks.append(space.encode(cand.genome)[0] == 3)
        strategy.tell(trial, cand, Observation(_toy_reward(space, cand.genome, noise)))
    # Uniform start: 1 in 5. After 150 updates the best choice dominates.
    assert np.mean(picks[:20]) < 0.5
    assert np.mean(picks[-30:]) > 0.7
    if controller == "independent":
        assert strategy.probabilities()[0][3] > 0.7


@pytest.mark.parametrize("controller", ["independent", "lstm"])
def test_state_is_json_and_resumes_exactly(controller: str) -> None:
    space, noise = CellSpace(), np.random.default_rng(2)
    a = Reinforce(space, seed=5, controller=controller)
    for trial in range(1, 21):
        cand = a.ask()
        a.tell(trial, cand, Observation(_toy_reward(space, cand.genome, noise)))
    b = Reinforce(space, seed=99, controller=controller)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    for trial in range(21, 31):
        ca, cb = a.ask(), b.ask()
        assert ca.genome == cb.genome
        reward = _toy_reward(space, ca.genome, noise)
        a.tell(trial, ca, Observation(reward))
        b.tell(trial, cb, Observation(reward))
    assert json.dumps(a.state_dict()) == json.dumps(b.state_dict())


def test_works_on_the_layer_graph_space() -> None:
    space = LayerGraphSpace((1, 8, 8), 10, LayerSpaceOptions(min_blocks=1, max_blocks=3, channels=(8, 16)))
    strategy = Reinforce(space, seed=0)
    assert len(strategy.sizes) == space.decision_depth() * (1 + len(space._slot_params()))
    for trial in range(1, 11):
        cand = strategy.ask()
        assert space.problems(cand.genome) == []
        # Reward deeper networks: the update must accept the layer space's choice vectors.
        strategy.tell(trial, cand, Observation(float(len(cand.genome))))
    assert strategy.updates == 10


def test_refuses_a_space_without_decisions() -> None:
    class Opaque(CellSpace):
        def decisions(self) -> list[int]:
            raise NotImplementedError

    with pytest.raises(ConfigError, match="categorical decisions"):
        Reinforce(Opaque(), seed=0)
    RandomSearch(Opaque(), seed=0).ask()  # strategies that need no decisions still work
    assert STRATEGIES["reinforce"] is Reinforce
