"""The contracts of spaces and strategies, checked for every registered one.

Parametrised over the registries (registry.SPACES, registry.STRATEGIES), so a space or strategy
added to them is checked here without writing a test: a space is made from the task (input_shape,
num_classes) as `search()` would make it, unless SMALL below makes a built-in one smaller; a
strategy is made by the one strategy factory, with two objectives for those that need them.

Spaces (space/base.py): sample, mutate and crossover give genomes that are hashable, round-trip
through to_json / from_json (as JSON text too) to an equal genome with the same key, and build into
an nn.Module (that runs on an input of the task where the test knows one); where the space
implements decisions / encode / decode, every decoded choice vector is a genome whose encoding
decodes back to it, and its decision features are finite numbers.

Strategies (strategy/base.py), on the cell, layers and function spaces: ask gives candidates of
the space (or None: wait), tell takes Observations, failures (reward None) included, several
candidates may be out at once, and a strategy loaded from the JSON of another's state_dict, taken
with a candidate still out (as the study stores it), asks exactly what the original asks from then
on. (This found REINFORCE and the predictor resuming inexactly on the layers space, whose decoding
repairs: both learnt from the raw choice vector a candidate was decoded from, which a resumed
study no longer has.)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from nasforge.registry import SPACES, STRATEGIES
from nasforge.space.base import SearchSpace
from nasforge.space.cell import CellSpace
from nasforge.space.function import FunctionSpace
from nasforge.space.layers import LayerGraphSpace, LayerSpaceOptions
from nasforge.space.resolve import instantiate
from nasforge.space.sequence import SequenceSpace, SequenceSpaceOptions
from nasforge.strategy.base import Candidate, Observation, Strategy
from nasforge.strategy.factory import create_strategy

TASK = {"input_shape": (1, 16), "num_classes": 3}


def small_model(c: Any) -> nn.Module:
    """A define-by-run model function with a conditional decision (the second conv's kernel)."""
    width = c.choice("width", [4, 8])
    layers: list[nn.Module] = [nn.Conv1d(1, width, c.choice("kernel0", [3, 5]), padding="same"), nn.ReLU()]
    if c.bool("second"):
        layers += [nn.Conv1d(width, width, c.choice("kernel1", [3, 5]), padding="same"), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(width, 3))


# Built-in spaces made small (and an input to run their networks on); any other registered space is
# made from TASK and only checked to build an nn.Module.
SMALL: dict[str, tuple[Callable[[], SearchSpace], Callable[[], torch.Tensor]]] = {
    "layers": (lambda: LayerGraphSpace((1, 16), 3, LayerSpaceOptions(min_blocks=1, max_blocks=3, channels=(4, 8), dense_units=(8,))),
               lambda: torch.randn(2, 1, 16)),
    "cell": (lambda: CellSpace((3, 8, 8), 3), lambda: torch.randn(2, 3, 8, 8)),
    "sequence": (lambda: SequenceSpace(30, 3, 12, "classify", SequenceSpaceOptions(widths=(8,), rnn_widths=(8,), bag_dims=(8,),
                                                                                   heads=(1, 2), buckets=64)),
                 lambda: torch.randint(1, 30, (2, 12))),
    "function": (lambda: FunctionSpace(small_model), lambda: torch.randn(2, 1, 16)),
}


def make_space(name: str) -> tuple[SearchSpace, torch.Tensor | None]:
    if name in SMALL:
        factory, example = SMALL[name]
        return factory(), example()
    return instantiate(SPACES[name], TASK), None


def _round_trips(space: SearchSpace, genome: Any) -> None:
    hash(genome)
    data = json.loads(json.dumps(space.to_json(genome)))
    again = space.from_json(data)
    assert again == genome, f"from_json(to_json(g)) != g for {space.describe(genome)}"
    assert space.key(again) == space.key(genome) and isinstance(space.key(genome), str)
    assert isinstance(space.describe(genome), str)


@pytest.fixture(params=SPACES.names())
def registered_space(request: pytest.FixtureRequest) -> tuple[SearchSpace, torch.Tensor | None]:
    return make_space(request.param)


def test_spaces_make_valid_genomes_that_round_trip_and_build(registered_space) -> None:
    space, example = registered_space
    rng = np.random.default_rng(0)
    sampled = [space.sample(rng) for _ in range(4)]
    made = list(sampled)
    for genome in sampled:
        child, operator = space.mutate(genome, rng)
        assert isinstance(operator, str) and operator
        made.append(child)
    made.append(space.crossover(sampled[0], sampled[1], rng))
    made.append(space.crossover(sampled[2], sampled[3], rng))
    for genome in made:
        _round_trips(space, genome)
    for genome in made[::3]:
        torch.manual_seed(0)
        model = space.build(genome)
        assert isinstance(model, nn.Module)
        if example is not None:
            model.eval()
            with torch.no_grad():
                out = model(example)
            assert out.shape[0] == example.shape[0] and torch.isfinite(out).all()


def test_spaces_decisions_encode_and_decode_where_implemented(registered_space) -> None:
    space, _ = registered_space
    try:
        sizes = space.decisions()
    except NotImplementedError:
        pytest.skip(f"the {space.name!r} space does not express itself as categorical decisions")
    assert sizes and all(isinstance(n, int) and n >= 1 for n in sizes)
    rng = np.random.default_rng(1)
    for _ in range(8):
        genome = space.decode([int(rng.integers(n)) for n in sizes])
        _round_trips(space, genome)
        code = space.encode(genome)
        assert len(code) == len(sizes) and all(-1 <= c < n for c, n in zip(code, sizes))
        occurred = space.occurred(genome)
        assert occurred is None or [c >= 0 for c in code] == occurred
        # A decision that did not occur (-1) takes any choice: decoding ignores it.
        assert space.decode([max(c, 0) for c in code]) == genome
        features = space.decision_features(np.array([[max(c, 0) for c in code]]))
        assert features.shape[0] == 1 and np.isfinite(features).all()


# -- strategies ---------------------------------------------------------------------------------
OBJECTIVES = ("accuracy", "params")


def _reward(space: SearchSpace, genome: Any, trial: int) -> float | None:
    """A deterministic reward of the genome; every fifth trial fails."""
    if trial % 5 == 0:
        return None
    return int(hashlib.sha1(space.key(genome).encode()).hexdigest()[:8], 16) / 16**8


def _observation(space: SearchSpace, genome: Any, trial: int) -> Observation:
    reward = _reward(space, genome, trial)
    metrics = {} if reward is None else {"accuracy": reward, "params": float(len(space.key(genome)) + 1000 * (1 - reward))}
    return Observation(reward, metrics, None)


def _drive(strategy: Strategy, space: SearchSpace, steps: int, first_trial: int, out: int = 2) -> list[str]:
    """`steps` asks, up to `out` candidates out at once, each told its observation; the keys asked, in order."""
    asked: list[str] = []
    pending: list[tuple[int, Candidate]] = []
    trial = first_trial
    while len(asked) < steps:
        candidate = strategy.ask() if len(pending) < out else None
        if candidate is None:
            assert pending, f"{type(strategy).__name__}.ask() returned None with nothing out: it would wait forever"
            done, cand = pending.pop(0)
            strategy.tell(done, cand, _observation(space, cand.genome, done))
            continue
        assert isinstance(candidate, Candidate)
        _round_trips(space, candidate.genome)
        asked.append(space.key(candidate.genome))
        pending.append((trial, candidate))
        trial += 1
    for done, cand in pending:
        strategy.tell(done, cand, _observation(space, cand.genome, done))
    return asked


def _make(name: str, space: SearchSpace, seed: int) -> Strategy:
    return create_strategy(name, space, seed, OBJECTIVES)


@pytest.fixture(params=STRATEGIES.names())
def strategy_name(request: pytest.FixtureRequest) -> str:
    return request.param


# Spaces whose decoding is a bijection (cell), repairs (layers: many choice vectors, one genome) and
# has conditional decisions (function: -1 for a decision that did not occur).
STRATEGY_SPACES = ["cell", "layers", "function"]


@pytest.mark.parametrize("space_name", STRATEGY_SPACES)
def test_strategies_ask_take_observations_and_failures(strategy_name: str, space_name: str) -> None:
    space, _ = make_space(space_name)
    strategy = _make(strategy_name, space, seed=3)
    asked = _drive(strategy, space, 24, first_trial=1)
    assert len(asked) == 24
    json.dumps(strategy.state_dict())  # the store keeps it as JSON


@pytest.mark.parametrize("space_name", STRATEGY_SPACES)
@pytest.mark.parametrize("told", [15, 41])
def test_strategies_resume_exactly_from_state_dict(strategy_name: str, space_name: str, told: int) -> None:
    space, _ = make_space(space_name)
    original = _make(strategy_name, space, seed=7)
    _drive(original, space, told, first_trial=1)
    # A candidate asked, and the state saved with it (as the study does) before its result is in.
    out = original.ask()
    assert out is not None
    state = json.loads(json.dumps(original.state_dict()))
    resumed = _make(strategy_name, space, seed=12345)
    resumed.load_state_dict(state)
    observation = _observation(space, out.genome, told + 1)
    original.tell(told + 1, out, observation)
    # The resumed study rebuilds the candidate from the store: genome JSON, parents and operator.
    stored = Candidate(space.from_json(json.loads(json.dumps(space.to_json(out.genome)))), tuple(out.parents), out.operator)
    resumed.tell(told + 1, stored, observation)
    assert _drive(original, space, 12, first_trial=told + 2) == _drive(resumed, space, 12, first_trial=told + 2)
