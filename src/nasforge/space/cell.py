"""The NAS-Bench-201 cell space: one 4-node DAG cell, repeated through a fixed ResNet-like skeleton.

Node 0 is the cell input, node 3 its output; each of the 6 edges i -> j (i < j) carries one op from
OPS. The genome is the 6 ops in the order of the standard arch string
`|op~0|+|op~0|op~1|+|op~0|op~1|op~2|` (edges 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2).

The network follows NB201: stem conv+BN, three stages of `cells_per_stage` cells at widths C, 2C,
4C with a residual reduction block (stride-2 ReLU-conv-BN pair + avg-pool/1x1-conv shortcut)
between stages, then BN-ReLU, global pooling and a linear classifier. It is built through a Plan,
so a found cell exports as standalone PyTorch source like any other space.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from ..errors import InvalidGenome
from .base import SearchSpace
from .cell_genome import (
    _ZERO_THRESHOLD,
    EDGES,
    NODES,
    OPS,
    PATHS,
    CellGenome,
    _decode,
    _encode,
    _key,
    parse_arch,
)
from .plan import Plan, PlanNet


class CellSpace(SearchSpace[CellGenome]):
    """NB201 cells for a task of `input_shape` (C, H, W) or (C, L) and `num_classes` classes."""

    name = "cell"

    def __init__(self, input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 10, channels: int = 16, cells_per_stage: int = 1):
        if len(input_shape) not in (2, 3) or any(int(d) < 1 for d in input_shape):
            raise InvalidGenome(f"input shape must be (C, L) or (C, H, W) with positive sizes, got {tuple(input_shape)}")
        # The head's width: classes, multi-label labels, or regression targets (1 for one target).
        if num_classes < 1:
            raise InvalidGenome(f"need at least 1 output (classes, labels or targets), got {num_classes}")
        if channels < 1 or cells_per_stage < 1:
            raise InvalidGenome(f"channels and cells_per_stage must be >= 1, got {channels} and {cells_per_stage}")
        # Two reductions need a map of at least 2 at each: 3 -> 2 -> 1.
        if min(int(d) for d in input_shape[1:]) < 3:
            raise InvalidGenome(f"the cell network halves the input twice; spatial size {tuple(input_shape[1:])} is below 3")
        self.input_shape = tuple(int(d) for d in input_shape)
        self.num_classes = int(num_classes)
        self.channels = int(channels)
        self.cells_per_stage = int(cells_per_stage)
        self.ndim = len(self.input_shape) - 1

    # -- genomes -------------------------------------------------------------------------------
    def to_json(self, genome: CellGenome) -> str:
        return genome.arch_str()

    def key(self, genome: CellGenome) -> str:
        return _key(genome.ops)

    def from_json(self, data: Any) -> CellGenome:
        if isinstance(data, list):
            if len(data) != len(EDGES) or any(op not in OPS for op in data):
                raise InvalidGenome(f"a cell genome lists {len(EDGES)} ops from {OPS}, got {data!r}")
            return CellGenome(tuple(data))
        return parse_arch(data)

    def describe(self, genome: CellGenome) -> str:
        return genome.arch_str()

    def config(self) -> dict[str, Any]:
        return {"input_shape": list(self.input_shape), "num_classes": self.num_classes,
                "channels": self.channels, "cells_per_stage": self.cells_per_stage}

    def sample(self, rng: np.random.Generator) -> CellGenome:
        return CellGenome(tuple(OPS[int(i)] for i in rng.integers(len(OPS), size=len(EDGES))))

    def mutate(self, genome: CellGenome, rng: np.random.Generator) -> tuple[CellGenome, str]:
        edge = int(rng.integers(len(EDGES)))
        others = [op for op in OPS if op != genome.ops[edge]]
        op = others[int(rng.integers(len(others)))]
        ops = list(genome.ops)
        ops[edge] = op
        return CellGenome(tuple(ops)), f"edge{EDGES[edge][1]}{EDGES[edge][0]}:{op}"

    def crossover(self, a: CellGenome, b: CellGenome, rng: np.random.Generator) -> CellGenome:
        take_a = rng.random(len(EDGES)) < 0.5
        return CellGenome(tuple(x if t else y for x, y, t in zip(a.ops, b.ops, take_a)))

    def all_genomes(self) -> list[CellGenome]:
        """Every cell (15,625), in mixed-radix order of the op indices, edge 1<-0 most significant."""
        grid = np.indices((len(OPS),) * len(EDGES)).reshape(len(EDGES), -1).T
        return [self.decode(row) for row in grid]

    # -- the space as categorical decisions ----------------------------------------------------
    def decisions(self) -> list[int]:
        return [len(OPS)] * len(EDGES)

    def encode(self, genome: CellGenome) -> list[int]:
        return list(_encode(genome.ops))

    def decode(self, choices: Sequence[int]) -> CellGenome:
        return _decode(tuple(choices.tolist() if isinstance(choices, np.ndarray) else (int(c) for c in choices)))

    def decision_features(self, choices: np.ndarray) -> np.ndarray:
        """One-hot ops plus the path encoding: which op sequence each input->output path carries.
        Paths are what make cells with the same ops on dead edges score alike. Surrogates call
        this on every query, so the rows of all 15,625 cells are computed once (16 MB) and looked up."""
        choices = np.asarray(choices, dtype=np.int64).reshape(-1, len(EDGES))
        if len(choices) and (choices.min() < 0 or choices.max() >= len(OPS)):
            raise InvalidGenome(f"cell choices are in 0..{len(OPS) - 1}, got {choices.min()}..{choices.max()}")
        return _feature_table()[choices @ _RADIX]

    # -- building ------------------------------------------------------------------------------
    def _relu_conv_bn(self, plan: Plan, name: str, cur: str, cin: int, cout: int, kernel: int, stride: int) -> str:
        d = self.ndim
        plan.module(f"{name}_relu", "ReLU")
        plan.module(f"{name}_conv", f"Conv{d}d", in_channels=cin, out_channels=cout, kernel_size=kernel, stride=stride,
                    padding=kernel // 2, bias=False)
        plan.module(f"{name}_bn", f"BatchNorm{d}d", num_features=cout)
        cur = plan.call(f"{name}_relu", cur, f"{name}_a")
        cur = plan.call(f"{name}_conv", cur, f"{name}_b")
        return plan.call(f"{name}_bn", cur, f"{name}_out")

    def _cell(self, plan: Plan, name: str, cur: str, c: int, genome: CellGenome) -> str:
        d = self.ndim
        nodes = [cur]
        for j in range(1, NODES):
            terms = []
            for k, (to, src) in enumerate(EDGES):
                op = genome.ops[k]
                if to != j or op == "none":
                    continue
                edge = f"{name}_e{src}{to}"
                if op == "skip_connect":
                    terms.append(nodes[src])
                elif op == "avg_pool_3x3":
                    plan.module(edge, f"AvgPool{d}d", kernel_size=3, stride=1, padding=1, count_include_pad=False)
                    terms.append(plan.call(edge, nodes[src], f"{edge}_out"))
                else:
                    kernel = 1 if op == "nor_conv_1x1" else 3
                    terms.append(self._relu_conv_bn(plan, edge, nodes[src], c, c, kernel, 1))
            if not terms:
                # All inputs are `none`: NB201's node is then a zero tensor, and ops after it still
                # apply to it (a conv-BN of zeros is BN's bias), so it is materialised, not skipped.
                plan.module(f"{name}_zero{j}", "Threshold", threshold=_ZERO_THRESHOLD, value=0.0)
                nodes.append(plan.call(f"{name}_zero{j}", cur, f"{name}_n{j}"))
            elif len(terms) == 1:
                nodes.append(terms[0])
            else:
                nodes.append(plan.add(tuple(terms), f"{name}_n{j}"))
        return nodes[-1]

    def plan(self, genome: CellGenome) -> Plan:
        if not isinstance(genome, CellGenome) or len(genome.ops) != len(EDGES) or any(op not in OPS for op in genome.ops):
            raise InvalidGenome(f"not a cell genome: {genome!r}")
        d, c = self.ndim, self.channels
        plan = Plan(input="x", output="logits")
        plan.module("stem_conv", f"Conv{d}d", in_channels=self.input_shape[0], out_channels=c, kernel_size=3, padding=1, bias=False)
        plan.module("stem_bn", f"BatchNorm{d}d", num_features=c)
        cur = plan.call("stem_bn", plan.call("stem_conv", "x", "stem_a"), "stem")
        for stage in range(3):
            if stage:
                cin, c = c, 2 * c
                name = f"red{stage}"
                a = self._relu_conv_bn(plan, f"{name}a", cur, cin, c, 3, 2)
                b = self._relu_conv_bn(plan, f"{name}b", a, c, c, 3, 1)
                # ceil_mode keeps the shortcut's size equal to the stride-2 conv's on odd sizes.
                plan.module(f"{name}_pool", f"AvgPool{d}d", kernel_size=2, stride=2, ceil_mode=True)
                plan.module(f"{name}_proj", f"Conv{d}d", in_channels=cin, out_channels=c, kernel_size=1, bias=False)
                short = plan.call(f"{name}_proj", plan.call(f"{name}_pool", cur, f"{name}_p"), f"{name}_s")
                cur = plan.add((b, short), f"{name}_out")
            for k in range(self.cells_per_stage):
                cur = self._cell(plan, f"s{stage}c{k}", cur, c, genome)
        plan.module("last_bn", f"BatchNorm{d}d", num_features=c)
        plan.module("last_relu", "ReLU")
        plan.module("gap", f"AdaptiveAvgPool{d}d", output_size=1)
        plan.module("flatten", "Flatten")
        plan.module("classifier", "Linear", in_features=c, out_features=self.num_classes)
        for step in ("last_bn", "last_relu", "gap", "flatten"):
            cur = plan.call(step, cur, f"{step}_out")
        plan.call("classifier", cur, "logits")
        return plan

    def build(self, genome: CellGenome) -> PlanNet:
        return PlanNet(self.plan(genome))

    def supernet(self) -> nn.Module:
        from .supernet.cell import CellSupernet

        return CellSupernet(self)


def _feature_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """For CellSpace.decision_features: per genome position and path, the path's mixed-radix digit
    weight and whether the position lies on it; every block's first column; the width."""
    global _FEATURE_TABLES
    if _FEATURE_TABLES is None:
        live = len(OPS) - 1  # `none` cuts a path
        digits = np.zeros((len(EDGES), len(PATHS)), dtype=np.int64)
        cuts = np.zeros((len(EDGES), len(PATHS)), dtype=np.int64)
        for p, path in enumerate(PATHS):
            for k, pos in enumerate(path):
                digits[pos, p] = live ** (len(path) - 1 - k)
                cuts[pos, p] = 1
        blocks = [len(OPS)] * len(EDGES) + [live ** len(path) for path in PATHS]
        offsets = np.concatenate([[0], np.cumsum(blocks)[:-1]]).astype(np.int64)
        _FEATURE_TABLES = (digits, cuts, offsets, int(sum(blocks)))
    return _FEATURE_TABLES


_FEATURE_TABLES: tuple[np.ndarray, np.ndarray, np.ndarray, int] | None = None


def _features_of(choices: np.ndarray) -> np.ndarray:
    """decision_features computed (one scatter for the whole batch of valid choice rows)."""
    digits, cuts, offsets, width = _feature_tables()
    # Column of each one-hot block and each path's op sequence; a cut path goes to a spare column.
    cols = np.empty((len(choices), len(EDGES) + len(PATHS)), dtype=np.int64)
    cols[:, :len(EDGES)] = choices + offsets[:len(EDGES)]
    cols[:, len(EDGES):] = np.maximum(choices - 1, 0) @ digits + offsets[len(EDGES):]
    cols[:, len(EDGES):][(choices == 0) @ cuts > 0] = width
    out = np.zeros((len(choices), width + 1))
    out.reshape(-1)[(cols + (width + 1) * np.arange(len(choices))[:, None]).reshape(-1)] = 1.0
    return out[:, :width]


# Mixed-radix weights of the choice vector: the row of a cell in `_feature_table` (and in all_genomes).
_RADIX = len(OPS) ** np.arange(len(EDGES) - 1, -1, -1, dtype=np.int64)
_FEATURE_TABLE: np.ndarray | None = None


def _feature_table() -> np.ndarray:
    global _FEATURE_TABLE
    if _FEATURE_TABLE is None:
        grid = np.indices((len(OPS),) * len(EDGES)).reshape(len(EDGES), -1).T
        _FEATURE_TABLE = np.ascontiguousarray(_features_of(grid))
    return _FEATURE_TABLE
