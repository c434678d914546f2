"""The pre-screen's cost: float32 synflow with a float64 fallback, the size cap, unscreened samples,
one build per candidate, and the benchmark's CPU-to-target column."""

from __future__ import annotations

import importlib.util
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nasforge.evaluate.cost import count_params
from nasforge.evaluate.proxies import synflow
from nasforge.space import LayerGraphSpace, LayerSpaceOptions
from nasforge.strategy.prescreen import ProxyScreenedSpace


def _deep(depth: int, scale: float) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Linear(64, 64) for _ in range(depth)]
    with torch.no_grad():
        for layer in layers:
            layer.weight.mul_(scale)
    return nn.Sequential(nn.Flatten(), *layers)


def test_synflow_float32_matches_float64_and_falls_back_on_overflow() -> None:
    small = _deep(3, 1.0)
    assert synflow(small, (64,), dtype=torch.float32) == pytest.approx(synflow(small, (64,), dtype=torch.float64), abs=1e-4)
    # |W| of 40 layers scaled by 20: the output overflows float32 (~3e38) but not float64.
    huge = _deep(40, 20.0)
    f64 = synflow(huge, (64,), dtype=torch.float64)
    assert np.isfinite(f64) and f64 > np.log(np.finfo(np.float32).max)
    assert synflow(huge, (64,), dtype=torch.float32) == pytest.approx(f64, rel=1e-9)
    # Scoring a copy leaves the model as it was (in float32, signs intact).
    assert next(huge.parameters()).dtype == torch.float32 and (next(huge.parameters()) < 0).any()


@pytest.fixture()
def space(digits):
    return LayerGraphSpace(digits.input_shape, digits.num_classes, LayerSpaceOptions(channels=(8, 16, 32, 64), dense_units=(16, 64)))


def _pool(space, seed: int, n: int):
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def test_uncapped_screen_keeps_the_best_proxy(space, digits) -> None:
    screened = ProxyScreenedSpace(space, digits.x_train[:32], "synflow", pool=6, cap="none")
    chosen = screened.sample(np.random.default_rng(0))
    pool = _pool(space, 0, 6)
    assert screened.scored == 6
    assert screened.score(chosen) == max(screened.score(g) for g in pool)


def test_capped_screen_keeps_the_best_proxy_among_candidates_no_larger_than_the_median(space, digits) -> None:
    for seed in range(4):
        screened = ProxyScreenedSpace(space, digits.x_train[:32], "synflow", pool=5, cap="params")
        chosen = screened.sample(np.random.default_rng(seed))
        pool = _pool(space, seed, 5)
        sizes = [count_params(space.build(g)) for g in pool]
        assert [screened.cost(g) for g in pool] == sizes
        limit = statistics.median(sizes)
        eligible = [g for g, n in zip(pool, sizes) if n <= limit]
        assert count_params(space.build(chosen)) <= limit
        assert screened.score(chosen) == max(screened.score(g) for g in eligible)
    # Mutations are screened the same way: the kept child is among the pool's smaller half.
    parent = pool[0]
    child, _ = screened.mutate(parent, np.random.default_rng(9))
    children = [g for g, _ in _mutations(space, parent, 9, 5)]
    assert space.key(child) in {space.key(g) for g in children}
    assert screened.cost(child) <= statistics.median(screened.cost(g) for g in children)


def _mutations(space, parent, seed: int, n: int):
    rng = np.random.default_rng(seed)
    return [space.mutate(parent, rng) for _ in range(n)]


def test_flops_cap_and_unknown_cap(space, digits) -> None:
    screened = ProxyScreenedSpace(space, digits.x_train[:32], "synflow", pool=3, cap="flops")
    g = screened.sample(np.random.default_rng(1))
    assert screened.cost(g) > 0
    with pytest.raises(ValueError, match="unknown cap"):
        ProxyScreenedSpace(space, digits.x_train[:32], cap="latency")


def test_sample_pool_of_one_leaves_random_samples_unscreened(space, digits) -> None:
    screened = ProxyScreenedSpace(space, digits.x_train[:32], "synflow", pool=4, sample_pool=1)
    g = screened.sample(np.random.default_rng(3))
    assert space.key(g) == space.key(_pool(space, 3, 1)[0])
    assert screened.scored == 0 and screened.seconds == 0.0
    screened.mutate(g, np.random.default_rng(4))
    assert 1 <= screened.scored <= 4  # mutations still are (duplicates are scored once)


def test_each_candidate_is_built_once_and_the_global_rng_is_untouched(space, digits, monkeypatch) -> None:
    screened = ProxyScreenedSpace(space, digits.x_train[:32], "synflow", pool=4)
    builds = []
    real_build = space.build
    monkeypatch.setattr(space, "build", lambda g: builds.append(space.key(g)) or real_build(g))
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    chosen = screened.sample(np.random.default_rng(5))
    screened.score(chosen), screened.cost(chosen)
    assert torch.equal(torch.rand(1), expected)
    assert len(builds) == len(set(builds)) == screened.scored and screened.seconds > 0


def test_benchmark_cpu_to_target_is_the_first_time_a_trial_reaches_it() -> None:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "performance" / "cheaper_evaluation.py"
    spec = importlib.util.spec_from_file_location("cheaper_evaluation", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    events = [(3.0, 0.80), (5.0, 0.95), (9.0, 0.97), (12.0, 0.99)]
    assert bench.cpu_to_target(events, 0.95) == 5.0
    assert bench.cpu_to_target(events, 0.96) == 9.0
    assert bench.cpu_to_target(events, 0.995) is None
