"""The predictor's incremental surrogate: exact against a from-scratch GP, and an exact resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nasforge.space.cell import CellSpace
from nasforge.strategy.predictor import PredictorEvolution


def _toy(space, genome) -> float:
    return float(sum(a == b for a, b in zip(space.encode(genome), [3, 3, 3, 1, 2, 3]))) + 0.01 * space.encode(genome)[0]


def _run(strategy, space, trials, start=1):
    proposals = []
    for trial in range(start, start + trials):
        cand = strategy.ask()
        proposals.append(space.to_json(cand.genome))
        strategy.tell(trial, cand, _toy(space, cand.genome))
    return proposals


@pytest.mark.parametrize("options", [{}, {"pool": 50, "random_pool": 10}, {"length_scale": None, "refit": 8}])
def test_incremental_surrogate_matches_a_fresh_fit(options) -> None:
    space = CellSpace()
    s = PredictorEvolution(space, seed=1, init=8, **options)
    _run(s, space, 40)
    n, p = s._n, s._p
    assert n == 40 and p > 0
    x, x2 = s._x[:n], s._x2[:n]
    d2 = np.maximum(x2[:, None] + x2[None, :] - 2 * x @ x.T, 0)
    k = np.exp(-d2 / (2 * s.length_scale**2)) + s.noise * np.eye(n)
    np.testing.assert_allclose(s._kinv[:n, :n] @ k, np.eye(n), atol=1e-8)
    kr, q = s._cross(s._c_x[:p], s._c_x2[:p])
    np.testing.assert_allclose(s._c_k[:p, :n], kr, atol=1e-10)
    np.testing.assert_allclose(s._c_q[:p], q, atol=1e-8)
    # The cached features are what the space computes.
    np.testing.assert_array_equal(s._c_x[:p], space.decision_features(s._c_choices[:p]))


@pytest.mark.parametrize("options", [{}, {"pool": 50, "random_pool": 10}, {"length_scale": None, "refit": 8}])
def test_resume_after_many_updates_continues_exactly(options) -> None:
    space = CellSpace()
    a = PredictorEvolution(space, seed=5, init=8, **options)
    _run(a, space, 45)  # past several capacity doublings, refits and cache growths
    b = PredictorEvolution(space, seed=0, init=8, **options)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert _run(a, space, 30, start=46) == _run(b, space, 30, start=46)


def test_never_proposes_a_seen_cell_and_handles_failures() -> None:
    space = CellSpace()
    s = PredictorEvolution(space, seed=2, init=5)
    seen = set()
    for trial in range(1, 120):
        cand = s.ask()
        key = space.key(cand.genome)
        assert key not in seen
        seen.add(key)
        s.tell(trial, cand, None if trial % 7 == 0 else _toy(space, cand.genome))


def test_cell_features_are_one_hot_plus_paths() -> None:
    space = CellSpace()
    x = space.decision_features(np.array([[3, 3, 3, 1, 2, 3], [0, 0, 0, 0, 0, 0]]))
    assert x.shape == (2, 30 + 4 + 16 + 16 + 64)
    assert x[0].sum() == 6 + 4 and x[1].sum() == 6  # all paths live / all cut by `none`
    assert x[0, 30 + 0] == 1.0  # path (3,): skip_connect is live op 0


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError):
        PredictorEvolution(CellSpace(), pool=0, random_pool=0, neighbours=0)
    with pytest.raises(ValueError):
        PredictorEvolution(CellSpace(), far_neighbours=-1)
