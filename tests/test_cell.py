"""The NB201 cell space: arch strings, variation, decisions and a real network."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from nasforge.errors import InvalidGenome
from nasforge.space import SPACES, CellSpace, make_space, parse_arch, plan_to_source
from nasforge.space.cell import EDGES, OPS

NB201 = Path(os.environ.get("NASFORGE_DATA", Path(__file__).parents[1].parent / "shared/data")) / "nb201/nb201.csv"
RESNET = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"


def test_round_trip_every_nb201_row() -> None:
    if not NB201.is_file():
        pytest.skip(f"NB201 table not found at {NB201} (set NASFORGE_DATA to the shared data folder)")
    with NB201.open(newline="") as f:
        archs = [row["arch_str"] for row in csv.DictReader(f)]
    assert len(archs) == 15625
    space = CellSpace()
    genomes = [space.from_json(a) for a in archs]
    assert [space.to_json(g) for g in genomes] == archs
    assert [space.decode(space.encode(g)) for g in genomes] == genomes
    # The table is exactly the space: every cell once.
    assert set(genomes) == set(space.all_genomes())


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("|nor_conv_3x3~0|+|none~0|", "separated nodes, found 2"),
        ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op 'conv'"),
        ("|none~0|+|none~0|none~2|+|none~0|none~1|none~2|", "should come from node 1"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 needs 2 edges"),
    ],
)
def test_bad_arch_strings_say_what_is_wrong(text: str, why: str) -> None:
    with pytest.raises(InvalidGenome, match=why):
        parse_arch(text)


def test_mutation_changes_one_edge_and_crossover_mixes_per_edge() -> None:
    space, rng = CellSpace(), np.random.default_rng(0)
    for _ in range(200):
        a, b = space.sample(rng), space.sample(rng)
        child, op = space.mutate(a, rng)
        assert sum(x != y for x, y in zip(a.ops, child.ops)) == 1 and op.startswith("edge")
        mixed = space.crossover(a, b, rng)
        assert all(m in (x, y) for m, x, y in zip(mixed.ops, a.ops, b.ops))
    assert space.decisions() == [len(OPS)] * len(EDGES)


def test_space_registered_and_rebuilt_from_config() -> None:
    space = CellSpace((1, 8, 8), 10, channels=8, cells_per_stage=2)
    assert SPACES["cell"] is CellSpace
    again = make_space("cell", space.config())
    assert again.config() == space.config()


def test_path_features_see_through_dead_edges() -> None:
    space = CellSpace()
    # Node 1 feeds nothing when edges 2<-1 and 3<-1 are `none`: the op on 1<-0 then changes the
    # one-hot part of the features but none of the paths.
    a = parse_arch("|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|")
    b = parse_arch("|avg_pool_3x3~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|")
    fa, fb = space.decision_features(np.array([space.encode(a), space.encode(b)]))
    onehot = len(OPS) * len(EDGES)
    assert np.array_equal(fa[onehot:], fb[onehot:]) and not np.array_equal(fa[:onehot], fb[:onehot])
    assert fa[onehot:].sum() == 2  # live paths: 0->3 (skip) and 0->2->3 (3x3, 3x3)


ZERO_NODES = "|none~0|+|none~0|none~1|+|none~0|none~1|nor_conv_1x1~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


@pytest.mark.parametrize("arch", [RESNET, ZERO_NODES, ALL_NONE])
def test_build_and_export_match(arch: str) -> None:
    """Nodes with no live input become zeros (NB201's semantics) and the export reproduces the net."""
    space = CellSpace((1, 8, 8), 10, channels=8, cells_per_stage=2)
    model = space.build(space.from_json(arch)).eval()
    x = torch.randn(4, 1, 8, 8)
    out = model(x)
    assert out.shape == (4, 10) and torch.isfinite(out).all()
    namespace: dict = {}
    exec(plan_to_source(model.plan), namespace)
    twin = namespace["FoundNet"]()
    twin.load_state_dict(model.state_dict())
    assert torch.allclose(twin.eval()(x), out, atol=1e-6)


def test_odd_and_1d_inputs_build() -> None:
    rng = np.random.default_rng(1)
    for shape in [(2, 7, 9), (1, 40), (3, 3)]:
        space = CellSpace(shape, 3, channels=4)
        assert space.build(space.sample(rng))(torch.randn(2, *shape)).shape == (2, 3)
    with pytest.raises(InvalidGenome, match="below 3"):
        CellSpace((1, 2, 8), 3)


def test_cell_network_trains_one_epoch_on_digits(digits) -> None:
    from nasforge.evaluate import TrainingEvaluator, TrainingOptions

    torch.set_num_threads(1)
    space = CellSpace(digits.input_shape, digits.num_classes, channels=8, cells_per_stage=1)
    evaluator = TrainingEvaluator(space, digits, TrainingOptions(epochs=1, batch_size=64, lr=3e-3))
    result = evaluator.evaluate(space.from_json(RESNET), seed=0)
    assert result.status == "complete", result.error
    assert result.params and result.params > 1000
    # After one epoch the training loss is well below chance level (ln 10 = 2.30). Validation
    # accuracy is not asserted: BatchNorm's running statistics are still warming up after ~20 steps.
    assert result.curve[-1]["train_loss"] < 0.8 * np.log(10)


def test_features_refuse_choices_outside_the_ops() -> None:
    space = CellSpace()
    with pytest.raises(InvalidGenome, match="0..4"):
        space.decision_features(np.array([[0, 1, 2, 3, 4, 5]]))
    x = space.decision_features(np.array([[4, 4, 4, 4, 4, 4]]))
    x[:] = 0.0  # a copy: the shared table behind it is untouched
    assert space.decision_features(np.array([[4, 4, 4, 4, 4, 4]])).sum() == 6 + 4
