"""The layer-graph space: genomes, variation, repair and building."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nasforge.errors import InvalidGenome
from nasforge.space import Layer, LayerGenome, LayerGraphSpace, plan_to_source

SPACES = {
    "signal": LayerGraphSpace((1, 40), 10),
    "image": LayerGraphSpace((1, 8, 8), 10),
    "multichannel": LayerGraphSpace((3, 17), 3),
}


def _check_buildable(space: LayerGraphSpace, genome: LayerGenome) -> None:
    assert space.problems(genome) == []
    model = space.build(genome)
    out = model(torch.randn(2, *space.input_shape))
    assert out.shape == (2, space.num_classes)


@pytest.mark.parametrize("name", sorted(SPACES))
def test_json_round_trip_and_hash(name: str) -> None:
    space = SPACES[name]
    rng = np.random.default_rng(0)
    genomes = [space.sample(rng) for _ in range(200)]
    for g in genomes:
        text = json.dumps(space.to_json(g))
        back = space.from_json(json.loads(text))
        assert back == g
        assert hash(back) == hash(g)
        assert space.key(back) == space.key(g)
    distinct = set(genomes)
    assert len({space.key(g) for g in distinct}) == len(distinct)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), name=st.sampled_from(sorted(SPACES)), steps=st.integers(1, 8))
def test_every_mutation_and_crossover_is_buildable(seed: int, name: str, steps: int) -> None:
    space = SPACES[name]
    rng = np.random.default_rng(seed)
    a, b = space.sample(rng), space.sample(rng)
    _check_buildable(space, a)
    for _ in range(steps):
        child, op = space.mutate(a, rng)
        assert child != a and op.split(":")[0] in {"insert", "delete", "replace", "change", "resample"}
        _check_buildable(space, child)
        a = child
    _check_buildable(space, space.crossover(a, b, rng))


def test_mutation_uses_every_operator() -> None:
    space = SPACES["signal"]
    rng = np.random.default_rng(1)
    g = space.sample(rng)
    ops = set()
    for _ in range(300):
        g, op = space.mutate(g, rng)
        ops.add(op.split(":")[0])
    assert {"insert", "delete", "replace", "change"} <= ops


def test_crossover_mixes_parents() -> None:
    space = SPACES["signal"]
    rng = np.random.default_rng(2)
    a = LayerGenome((Layer.of("conv", kernel=3, channels=8, stride=1),) * 3)
    b = LayerGenome((Layer.of("conv", kernel=5, channels=16, stride=1),) * 3)
    kinds = set()
    for _ in range(100):
        child = space.crossover(a, b, rng)
        kinds |= {layer["channels"] for layer in child.layers}
        assert set(child.layers) <= set(a.layers) | set(b.layers)
    assert kinds == {8, 16}


def test_hundred_stride_two_pools_are_repaired_not_fatal() -> None:
    space = SPACES["image"]
    pools = LayerGenome(tuple(Layer.of("pool", op="max", size=2) for _ in range(100)))
    with pytest.raises(InvalidGenome, match="pooling would shrink"):
        space.validate(pools)
    repaired = space.repair(pools)
    assert 0 < len(repaired) <= 3  # 8 -> 4 -> 2 -> 1, nothing more fits
    _check_buildable(space, repaired)


def test_stride_on_size_one_map_is_neutralised() -> None:
    space = SPACES["image"]
    g = LayerGenome(tuple([Layer.of("pool", op="avg", size=2)] * 3 + [Layer.of("conv", kernel=3, channels=8, stride=2)]))
    repaired = space.repair(g)
    assert repaired.layers[-1]["stride"] == 1
    _check_buildable(space, repaired)


def test_skip_projects_when_shapes_differ() -> None:
    space = SPACES["signal"]
    g = LayerGenome((
        Layer.of("conv", kernel=3, channels=8, stride=1),
        Layer.of("conv", kernel=3, channels=32, stride=2),
        Layer.of("skip", span=2),
    ))
    assert space.problems(g) == []
    names = dict(space.build(g).named_modules())
    assert "l2_proj" in names and "l2_pool" in names
    _check_buildable(space, g)


def test_conv_after_dense_is_dropped_by_repair() -> None:
    space = SPACES["signal"]
    g = LayerGenome((Layer.of("dense", units=32), Layer.of("conv", kernel=3, channels=8, stride=1), Layer.of("skip", span=1)))
    assert any("after the first dense" in p for p in space.problems(g))
    repaired = space.repair(g)
    # The skip now reaches back across the map/vector boundary to the input, so it goes too.
    assert [layer.kind for layer in repaired.layers] == ["dense"]
    _check_buildable(space, repaired)


@pytest.mark.parametrize("bad", [
    "conv", [{"kind": "teleport"}], [{"kind": "conv", "kernel": 3}], [{"kind": "dense", "units": 7, "extra": 1}],
])
def test_malformed_genome_json_is_named(bad) -> None:
    with pytest.raises(InvalidGenome):
        SPACES["signal"].from_json(bad)


def test_generated_source_matches_built_module(tmp_path) -> None:
    space = SPACES["image"]
    rng = np.random.default_rng(3)
    g = space.sample(rng)
    while not any(layer.kind == "skip" for layer in g.layers):
        g = space.sample(rng)
    model = space.build(g).eval()
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    (tmp_path / "model.py").write_text(plan_to_source(model.plan))
    x = torch.randn(4, *space.input_shape)
    np.save(tmp_path / "x.npy", x.numpy())
    np.save(tmp_path / "y.npy", model(x).detach().numpy())
    script = (
        "import sys, numpy as np, torch; sys.path.insert(0, '.'); import model; "
        "m = model.load('weights.pt'); y = m(torch.from_numpy(np.load('x.npy'))).detach().numpy(); "
        "assert np.allclose(y, np.load('y.npy'), atol=1e-6), abs(y - np.load('y.npy')).max(); print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
