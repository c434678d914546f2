"""The NB201 cell space as one supernet: every edge of every cell holds all five ops.

As in the NB201 paper's weight-sharing baselines, one genome is one path: its op on edge i -> j is
the active candidate of that edge in every cell (label `edge{i}{j}`). The skeleton (stem, residual
reductions, classifier) is built from the modules of the cell space's own Plan and run in the same
order, and a node sums its live edges in the same order, so a path computes exactly (bit for bit)
what `CellSpace.build(genome)` computes with the same weights; `extract` relies on that.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from ..base import Genome
from ..cell_genome import _ZERO_THRESHOLD, EDGES, NODES, OPS, CellGenome
from ..plan import make_module
from .base import Supernet
from .mixed import MixedOp

if TYPE_CHECKING:
    from ..cell import CellSpace

# Edge modules of a cell in the space's Plan: `s{stage}c{k}_e{src}{to}` (+ `_relu`/`_conv`/`_bn`).
_EDGE = re.compile(r"^(s\d+c\d+_e\d\d)\.(relu|conv|bn)\.")
_CELL_MODULE = re.compile(r"^s\d+c\d+_")


class ReLUConvBN(nn.Module):
    """The cell space's conv op (ReLU, conv, batch norm), with the children it names in its Plan."""

    def __init__(self, d: int, channels: int, kernel: int):
        super().__init__()
        self.relu = nn.ReLU()
        self.conv = getattr(nn, f"Conv{d}d")(channels, channels, kernel_size=kernel, stride=1, padding=kernel // 2, bias=False)
        self.bn = getattr(nn, f"BatchNorm{d}d")(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(self.relu(x)))


class Zero(nn.Module):
    """The `none` op as a module (a node skips it; a MixedOp run on its own returns zeros)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def edge_candidates(d: int, channels: int) -> dict[str, nn.Module]:
    return {
        "none": Zero(),
        "skip_connect": nn.Identity(),
        "nor_conv_1x1": ReLUConvBN(d, channels, 1),
        "nor_conv_3x3": ReLUConvBN(d, channels, 3),
        "avg_pool_3x3": getattr(nn, f"AvgPool{d}d")(kernel_size=3, stride=1, padding=1, count_include_pad=False),
    }


def edge_label(src: int, to: int) -> str:
    return f"edge{src}{to}"


class CellSupernet(Supernet):
    def __init__(self, space: CellSpace):
        super().__init__(space)
        assert tuple(edge_candidates(1, 1)) == OPS
        d = space.ndim
        # The skeleton's modules exactly as the space plans them (names, classes, arguments).
        template = space.plan(CellGenome(("none",) * len(EDGES)))
        for name, (cls, kwargs) in template.modules.items():
            if not _CELL_MODULE.match(name):
                self.add_module(name, make_module(cls, kwargs))
        self.cells: list[tuple[str, int]] = []
        c = space.channels
        for stage in range(3):
            if stage:
                c *= 2
            for k in range(space.cells_per_stage):
                cell = f"s{stage}c{k}"
                self.cells.append((cell, stage))
                for to, src in EDGES:
                    self.add_module(f"{cell}_e{src}{to}", MixedOp(edge_label(src, to), edge_candidates(d, c)))
        self.zero = nn.Threshold(_ZERO_THRESHOLD, 0.0)

    def path(self, genome: Genome) -> dict[str, str]:
        return {edge_label(src, to): op for (to, src), op in zip(EDGES, cast(CellGenome, genome).ops)}

    def standalone_key(self, key: str) -> str:
        # `s0c0_e01.conv.weight` (the collapsed path key) is `s0c0_e01_conv.weight` in the Plan.
        return _EDGE.sub(r"\1_\2.", key)

    def _part(self, name: str) -> nn.Module:
        return cast(nn.Module, getattr(self, name))

    def _relu_conv_bn(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return self._part(f"{name}_bn")(self._part(f"{name}_conv")(self._part(f"{name}_relu")(x)))

    def _cell(self, cell: str, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for j in range(1, NODES):
            total = None
            for to, src in EDGES:
                if to != j:
                    continue
                op = cast(MixedOp, self._modules[f"{cell}_e{src}{to}"])
                if op.active == "none":
                    continue
                term = op(nodes[src])
                total = term if total is None else total + term
            nodes.append(self.zero(x) if total is None else total)
        return nodes[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        part = self._part
        x = part("stem_bn")(part("stem_conv")(x))
        for cell, stage in self.cells:
            if stage and cell.endswith("c0"):
                name = f"red{stage}"
                b = self._relu_conv_bn(f"{name}b", self._relu_conv_bn(f"{name}a", x))
                x = b + self._part(f"{name}_proj")(self._part(f"{name}_pool")(x))
            x = self._cell(cell, x)
        x = part("flatten")(part("gap")(part("last_relu")(part("last_bn")(x))))
        return part("classifier")(x)
