"""The layer-graph space draws, varies, encodes and builds exactly what it did before it was split
into a package (space/layers/): tests/data/layers_golden.json was written by the single-module
space (`python tests/test_layers_golden.py --write` on that version) and holds, for seeded genomes
of four spaces, the sampled, mutated, crossed-over and decoded genomes, their encodings and
descriptions, and each network's tensor names and shapes and its output for fixed weights and input.

The weights are set by a formula (not torch's initialisation, which may change between torch
versions), so the outputs pin the network's computation itself.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nasforge.space.layers import LayerGraphSpace, LayerSpaceOptions

GOLDEN = Path(__file__).parent / "data" / "layers_golden.json"

SPACES = {
    "1d": ((1, 40), 10, {}),
    "2d-stem": ((3, 32, 32), 10, {}),
    "2d-small-hparams": ((1, 8, 8), 4, {"hparams": (("lr", (0.1, 0.01)), ("batch_size", (32, 64)))}),
    "1d-narrow": ((2, 24), 3, {"min_blocks": 1, "max_blocks": 3, "channels": (8, 16, 32), "dense_units": (16, 32),
                                "max_skip_span": 3}),
}
SEEDS = range(4)


def _set_weights(model: torch.nn.Module) -> None:
    """Every float tensor from a formula of its position; running variances kept positive."""
    with torch.no_grad():
        for k, (name, tensor) in enumerate(sorted(model.state_dict().items())):
            if not tensor.is_floating_point():
                continue
            values = 0.1 * torch.sin(torch.arange(tensor.numel(), dtype=torch.float64) * 0.37 + k)
            if name.endswith("running_var"):
                values = values.abs() + 0.5
            tensor.copy_(values.reshape(tensor.shape).to(tensor.dtype))


def _digest(values: list) -> str:
    return hashlib.sha256(json.dumps(values).encode()).hexdigest()[:16]


def _network(space: LayerGraphSpace, genome) -> dict:
    model = space.build(genome)
    _set_weights(model)
    model.eval()
    shape = (2, *space.input_shape)
    x = torch.sin(torch.arange(int(np.prod(shape)), dtype=torch.float32) * 0.1).reshape(shape)
    with torch.no_grad():
        out = model(x)
    tensors = [[name, list(t.shape)] for name, t in model.state_dict().items()]
    return {"tensors": f"{len(tensors)} tensors, {_digest(tensors)}",
            "output": [round(float(v), 6) for v in out.flatten()[:8]], "output_sum": round(float(out.sum()), 5)}


def record(name: str, seed: int) -> dict:
    input_shape, classes, options = SPACES[name]
    space = LayerGraphSpace(input_shape, classes, LayerSpaceOptions(**options))
    rng = np.random.default_rng(seed)
    genome = space.sample(rng)
    other = space.sample(rng)
    mutants, operators, current = [], [], genome
    for _ in range(4):
        current, operator = space.mutate(current, rng)
        mutants.append(current)
        operators.append(operator)
    child = space.crossover(genome, other, rng)
    sizes = space.decisions()
    decoded = space.decode([int(rng.integers(n)) for n in sizes])
    genomes = {"sampled": genome, "other": other, "child": child, "decoded": decoded,
               **{f"mutant{i}": m for i, m in enumerate(mutants)}}
    return {
        "genomes": {k: space.to_json(g) for k, g in genomes.items()},
        "operators": operators,
        "describe": {k: space.describe(g) for k, g in genomes.items()},
        # (as digests: a slot is one decision per parameter of every kind, hundreds per genome)
        "encoded": {k: _digest(space.encode(g)) for k, g in genomes.items() if len(g) <= space.decision_depth()},
        "decisions": len(sizes),
        "receptive_field": {k: space.receptive_field(g) for k, g in genomes.items()},
        "networks": {k: _network(space, g) for k, g in genomes.items()},
        "module_map": sorted(space.module_map(genome, mutants[0]).items()),
    }


@pytest.mark.parametrize("name", sorted(SPACES))
def test_layers_space_does_what_it_did(name):
    golden = json.loads(GOLDEN.read_text())
    for seed in SEEDS:
        got, want = record(name, seed), golden[name][str(seed)]
        for part in ("genomes", "operators", "describe", "encoded", "decisions", "receptive_field", "module_map"):
            assert json.loads(json.dumps(got[part])) == want[part], f"{name} seed {seed}: {part}"
        for which, net in got["networks"].items():
            expected = want["networks"][which]
            assert net["tensors"] == expected["tensors"], f"{name} seed {seed} {which}: tensors"
            np.testing.assert_allclose(net["output"], expected["output"], rtol=1e-4, atol=1e-5)
            assert net["output_sum"] == pytest.approx(expected["output_sum"], rel=1e-4, abs=1e-4)


if __name__ == "__main__" and "--write" in sys.argv:
    GOLDEN.write_text(json.dumps({name: {str(s): record(name, s) for s in SEEDS} for name in sorted(SPACES)}, indent=None))
    print(f"wrote {GOLDEN}")
