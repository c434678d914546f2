"""The NAS-Bench-201 cell as data: the ops, the edges, the genome (6 ops in arch-string order),
its arch string and its choice-vector encoding. The space that builds and varies cells is cell.py;
the weight-sharing supernet of all cells is supernet/cell.py; both read the cell from here."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass

from ..errors import InvalidGenome

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# (to, from) per genome position, in arch-string order.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NODES = 4
# Every input->output path as genome positions; the path encoding (White et al., BANANAS) marks
# which op sequence each path carries when no edge on it is `none`.
PATHS: tuple[tuple[int, ...], ...] = ((3,), (0, 4), (1, 5), (0, 2, 5))
# Above any finite activation a network produces: nn.Threshold with it maps every value to 0.0,
# which is how a node with no live input becomes a zero tensor using torch.nn modules only.
_ZERO_THRESHOLD = 3.0e38


@dataclass(frozen=True)
class CellGenome:
    ops: tuple[str, ...]

    def arch_str(self) -> str:
        return _arch_str(self.ops)

    def __str__(self) -> str:
        return self.arch_str()


# Memoised: there are only 15,625 cells, and a tabular search asks for these on every query.
@functools.lru_cache(maxsize=1 << 16)
def _arch_str(ops: tuple[str, ...]) -> str:
    parts, k = [], 0
    for node in range(1, NODES):
        parts.append("|" + "|".join(f"{ops[k + i]}~{i}" for i in range(node)) + "|")
        k += node
    return "+".join(parts)


@functools.lru_cache(maxsize=1 << 16)
def _key(ops: tuple[str, ...]) -> str:
    # SearchSpace.key's value (sha1 of the canonical JSON of to_json), computed once per cell.
    return hashlib.sha1(json.dumps(_arch_str(ops), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# Memoised like the two above (a tabular search decodes and encodes on every query); a failed
# decode raises, and exceptions are not cached.
@functools.lru_cache(maxsize=1 << 16)
def _decode(choices: tuple[int, ...]) -> CellGenome:
    if len(choices) != len(EDGES) or any(not 0 <= c < len(OPS) for c in choices):
        raise InvalidGenome(f"a cell is {len(EDGES)} choices in 0..{len(OPS) - 1}, got {list(choices)}")
    return CellGenome(tuple(OPS[c] for c in choices))


@functools.lru_cache(maxsize=1 << 16)
def _encode(ops: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(OPS.index(op) for op in ops)


def parse_arch(text: str) -> CellGenome:
    """The genome of an NB201 arch string; InvalidGenome says what is wrong with a bad one."""
    if not isinstance(text, str):
        raise InvalidGenome(f"an arch string is text, got {type(text).__name__}")
    nodes = text.strip().split("+")
    if len(nodes) != NODES - 1:
        raise InvalidGenome(f"arch string {text!r}: expected {NODES - 1} '+'-separated nodes, found {len(nodes)}")
    ops = []
    for j, node in enumerate(nodes, start=1):
        edges = [e for e in node.strip().strip("|").split("|")]
        if len(edges) != j:
            raise InvalidGenome(f"arch string {text!r}: node {j} needs {j} edges, found {len(edges)}")
        for i, edge in enumerate(edges):
            op, _, src = edge.partition("~")
            if op not in OPS:
                raise InvalidGenome(f"arch string {text!r}: unknown op {op!r}; known: {', '.join(OPS)}")
            if src != str(i):
                raise InvalidGenome(f"arch string {text!r}: edge {edge!r} of node {j} should come from node {i}")
            ops.append(op)
    return CellGenome(tuple(ops))
