"""The predictor's incremental surrogate: exact against a from-scratch GP, and an exact resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nasforge.space.cell import CellSpace
from nasforge.strategy.base import Observation
from nasforge.strategy.predictor import PredictorEvolution


def _toy(space, genome) -> float:
    return float(sum(a == b for a, b in zip(space.encode(genome), [3, 3, 3, 1, 2, 3]))) + 0.01 * space.encode(genome)[0]


def _run(strategy, space, trials, start=1):
    proposals = []
    for trial in range(start, start + trials):
        cand = strategy.ask()
        proposals.append(space.to_json(cand.genome))
        strategy.tell(trial, cand, Observation(_toy(space, cand.genome)))
    return proposals


@pytest.mark.parametrize(("options", "trials"), [({}, 40), ({}, 140), ({"pool": 50, "random_pool": 10}, 40),
                                                ({"length_scale": None, "refit": 8}, 40)])
def test_incremental_surrogate_matches_a_fresh_fit(options, trials) -> None:
    space = CellSpace()
    s = PredictorEvolution(space, seed=1, init=8, **options)
    _run(s, space, trials)  # 140: past the members' initial capacity (128), with a cache to grow too
    n, p = s.gp.n, s.cache.p
    assert n == trials and p > 0
    x, x2 = s.gp.x[:n], s.gp.x2[:n]
    d2 = np.maximum(x2[:, None] + x2[None, :] - 2 * x @ x.T, 0)
    k = np.exp(-d2 / (2 * s.gp.length_scale**2)) + s.gp.noise * np.eye(n)
    np.testing.assert_allclose(s.gp.kinv[:n, :n] @ k, np.eye(n), atol=1e-8)
    kr, q = s.gp.cross(s.cache.xt[:, :p].T, s.cache.x2[:p])
    np.testing.assert_allclose(s.cache.kt[:n, :p].T, kr, atol=1e-10)
    np.testing.assert_allclose(s.cache.q[:p], q, atol=1e-8)
    # The cached features are what the space computes (0/1 here, so stored in float32).
    assert s.cache.xt.dtype == np.float32
    np.testing.assert_array_equal(s.cache.xt[:, :p].T.astype(float), space.decision_features(s.cache.choices[:p]))
    # The cached posterior means are those of a fresh fit to the standardised, clipped rewards.
    t = s.gp.targets(s.gp.rewards[:n])
    alpha = np.linalg.solve(k, (t - t.mean()) / t.std())
    np.testing.assert_allclose(s.cache.mean[:p], kr @ alpha, atol=1e-7)


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
        s.tell(trial, cand, Observation(None if trial % 7 == 0 else _toy(space, cand.genome)))


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


def test_binary_check_and_float64_fallback() -> None:
    from nasforge.strategy.surrogate.cache import is_binary

    x = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert is_binary(x, (x * x).sum(1))
    for bad in (x * 0.5, x * 2.0, x - 1.0):
        assert not is_binary(bad, (bad * bad).sum(1))


class _ScaledCells(CellSpace):
    """Cell features that are not 0/1: the cache must keep them in float64."""

    def decision_features(self, choices):
        return 0.7 * super().decision_features(choices)


def test_non_binary_features_stay_exact() -> None:
    space = _ScaledCells()
    s = PredictorEvolution(space, seed=1, init=8)
    _run(s, space, 30)
    n, p = s.gp.n, s.cache.p
    assert s.cache.xt.dtype == np.float64
    kr, q = s.gp.cross(s.cache.xt[:, :p].T, s.cache.x2[:p])
    np.testing.assert_allclose(s.cache.kt[:n, :p].T, kr, atol=1e-10)
    np.testing.assert_allclose(s.cache.q[:p], q, atol=1e-8)
