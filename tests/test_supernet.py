"""Supernets (space/supernet/): MixedOp paths, extraction into the space's own network, batch-norm recalibration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nasforge.errors import InvalidGenome
from nasforge.space import CellSpace, LayerGraphSpace
from nasforge.space.plan import PlanNet
from nasforge.space.supernet import MixedOp, activate, choices_of, path_parameters, path_state_dict, recalibrate
from nasforge.space.supernet.batchnorm import batch_norms


@pytest.mark.parametrize("shape", [(1, 12), (2, 7, 9)])
def test_a_path_computes_exactly_what_its_extracted_network_computes(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    space = CellSpace(shape, 4, channels=4)
    net = space.supernet()
    rng = np.random.default_rng(0)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    x = torch.randn(6, *shape)
    corner_cases = [space.from_json([op] * 6) for op in ("none", "skip_connect", "nor_conv_3x3", "avg_pool_3x3")]
    for genome in corner_cases + [space.sample(rng) for _ in range(6)]:
        # Shared weights that differ from any initialisation: one training step on this path.
        net.activate(genome)
        net.train()
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(x), torch.arange(6) % 4).backward()
        optimizer.step()
        recalibrate(net, [torch.randn(5, *shape), torch.randn(5, *shape)])
        standalone = net.extract(genome)
        assert type(standalone) is PlanNet and type(standalone) is type(space.build(genome))
        with torch.no_grad():
            assert torch.equal(net(x), standalone.eval()(x)), space.describe(genome)
        assert path_parameters(net) == sum(p.numel() for p in standalone.parameters())


def test_batch_norm_recalibration_changes_only_running_statistics() -> None:
    torch.manual_seed(0)
    space = CellSpace((1, 10), 3, channels=4)
    net = space.supernet()
    genome = space.from_json(["nor_conv_3x3"] * 6)
    net.activate(genome)
    net.train()
    net(torch.randn(8, 1, 10) * 3 + 1)  # running statistics of some other data
    before = {k: v.clone() for k, v in net.state_dict().items()}
    batches = [torch.randn(7, 1, 10) * 2 - 0.5 for _ in range(3)]
    recalibrate(net, batches)
    after = net.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in changed)
    assert {k.rsplit(".", 1)[0] for k in changed if k.endswith("running_mean")} >= {"stem_bn", "last_bn"}
    assert not net.training
    # The first batch norm sees the stem conv of the batches: its statistics are theirs exactly (a
    # cumulative average of equal-sized batches), not a momentum blend with what was there before.
    with torch.no_grad():
        feats = torch.cat([net.stem_conv(b) for b in batches])
    assert torch.allclose(net.stem_bn.running_mean, feats.mean(dim=(0, 2)), atol=1e-6)
    assert all(bn.momentum == 0.1 for bn in batch_norms(net))  # restored


def test_mixed_op_paths_share_labels_and_collapse_keys() -> None:
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.op = MixedOp("op", {"wide": lambda: nn.Linear(3, 3), "id": nn.Identity()})
            self.inner = MixedOp("act", {"relu": nn.ReLU(), "nested": MixedOp("deep", {"a": nn.Linear(3, 3), "b": nn.Tanh()})})

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(self.op(x))

    model = nn.Sequential(Block(), Block())
    assert choices_of(model) == {"op": ("wide", "id"), "act": ("relu", "nested"), "deep": ("a", "b")}
    activate(model, {"op": "wide", "act": "nested", "deep": "a"})
    state = path_state_dict(model)
    assert sorted(state) == ["0.inner.bias", "0.inner.weight", "0.op.bias", "0.op.weight",
                             "1.inner.bias", "1.inner.weight", "1.op.bias", "1.op.weight"]
    assert torch.equal(state["1.op.weight"], model[1].op.candidates["wide"].weight)
    # A nested choice under a candidate that is not chosen needs no entry.
    activate(model, {"op": "id", "act": "relu"})
    assert path_state_dict(model) == {} and path_parameters(model) == 0
    with pytest.raises(InvalidGenome, match="no choice for 'op'"):
        activate(model, {"act": "relu"})
    with pytest.raises(InvalidGenome, match="no candidate 'conv'"):
        activate(model, {"op": "conv", "act": "relu"})
    with pytest.raises(InvalidGenome, match="without '.'"):
        MixedOp("x", {"a.b": nn.Identity()})


def test_only_spaces_with_a_supernet_offer_one() -> None:
    with pytest.raises(NotImplementedError, match="no supernet"):
        LayerGraphSpace((1, 8), 2).supernet()


class _Recorder:
    """An ordinary-mode recorder as a define-by-run space has one: each module choice returns the chosen candidate."""

    def __init__(self, genome: dict[str, str]):
        self.genome = genome

    def module(self, label: str, candidates: dict) -> nn.Module:
        from nasforge.space.supernet.mixed import build_candidate

        return build_candidate(candidates[self.genome[label]] if isinstance(candidates, dict) else candidates[int(self.genome[label])])

    def int(self, name: str, low: int, high: int) -> int:
        return 2


def _model(c) -> nn.Module:
    layers = []
    for i in range(c.int("depth", 1, 3)):
        layers.append(c.module(f"op{i}", {"conv3": lambda: nn.Conv1d(4, 4, 3, padding=1), "conv5": lambda: nn.Conv1d(4, 4, 5, padding=2),
                                          "skip": nn.Identity}))
        layers += [nn.BatchNorm1d(4), nn.ReLU()]
    layers.append(c.module("pool", [lambda: nn.AdaptiveAvgPool1d(1), lambda: nn.AdaptiveMaxPool1d(1)]))  # by position
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(4, 3))


class _FunctionSpace(CellSpace):
    """A stand-in define-by-run space over `_model` (genome: label -> candidate, as a sorted tuple)."""

    name = "toy-function"

    def build(self, genome) -> nn.Module:
        return _model(_Recorder(genome))

    def supernet(self) -> nn.Module:
        from nasforge.space.supernet.function import FunctionSupernet

        return FunctionSupernet(self, _model, fixed={"depth": 2})


def test_a_define_by_run_model_function_builds_its_supernet_and_extracts_paths_exactly() -> None:
    torch.manual_seed(0)
    space = _FunctionSpace((1, 8), 3)
    net = space.supernet()
    assert net.choices() == {"op0": ("conv3", "conv5", "skip"), "op1": ("conv3", "conv5", "skip"), "pool": ("0", "1")}
    x = torch.randn(5, 4, 6)
    for ops in [("conv3", "skip", 0), ("conv5", "conv3", 1), ("skip", "skip", 0)]:
        genome = {"depth": 2, **dict(zip(("op0", "op1", "pool"), ops))}  # as a define-by-run genome records it
        net.activate(genome)
        net.train()
        net(x).sum().backward()
        recalibrate(net, [torch.randn(6, 4, 6)])
        with torch.no_grad():
            assert torch.equal(net(x), net.extract(genome).eval()(x))
    from nasforge.space.supernet.function import SupernetRecorder

    with pytest.raises(InvalidGenome, match="'depth' is not a choice among modules"):
        _model(SupernetRecorder())


def test_a_model_function_of_module_choices_has_a_supernet_whose_paths_are_its_networks() -> None:
    import model_families as fam
    from nasforge.space.function import FunctionSpace

    torch.manual_seed(0)
    space = FunctionSpace(fam.op_cells)
    net = space.supernet()
    assert net.choices() == {"op0": ("conv3", "conv5", "skip"), "op1": ("conv3", "conv5", "skip"), "pool": ("0", "1")}
    rng = np.random.default_rng(0)
    x = torch.randn(6, 1, 8, 8)
    for _ in range(4):
        genome = space.sample(rng)
        net.activate(genome)
        net.train()
        net(x).sum().backward()
        recalibrate(net, [torch.randn(8, 1, 8, 8)])
        standalone = net.extract(genome).eval()
        assert type(standalone) is type(space.build(genome))
        with torch.no_grad():
            assert torch.equal(net(x), standalone(x))
    with pytest.raises(NotImplementedError, match=r"'width' \(c.choice\).*'depth' \(c.int\)"):
        FunctionSpace(fam.tiny_resnet).supernet()
