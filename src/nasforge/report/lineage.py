"""Lineage: the ancestors of one trial, and which operator made each step.

Parents always have smaller trial ids than their children (a trial is asked for after its parents
were told), so the ancestry is a DAG; crossover gives a node two parents.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..store import TrialRecord


@dataclass(frozen=True)
class Edge:
    parent: int
    child: int
    operator: str  # the child's operator: what turned the parent(s) into the child


@dataclass
class Lineage:
    root: int  # the trial whose ancestry this is
    nodes: dict[int, TrialRecord]
    edges: list[Edge]
    depth: dict[int, int]  # longest parent-chain distance from the root: 0 for the root itself
    missing: list[int]  # parents named by a trial but absent from the store

    def chain(self) -> list[TrialRecord]:
        """Ancestors then the root, oldest first (trial-id order is a topological order)."""
        return [self.nodes[i] for i in sorted(self.nodes)]


def lineage(trials: Iterable[TrialRecord], trial_id: int) -> Lineage:
    by_id = {t.id: t for t in trials}
    if trial_id not in by_id:
        raise KeyError(f"no trial {trial_id}")
    nodes: dict[int, TrialRecord] = {}
    missing: list[int] = []
    stack = [trial_id]
    while stack:
        i = stack.pop()
        if i in nodes:
            continue
        nodes[i] = by_id[i]
        for p in by_id[i].parents:
            if p in by_id:
                stack.append(p)
            elif p not in missing:
                missing.append(p)
    edges = [Edge(p, t.id, t.operator) for t in sorted(nodes.values(), key=lambda t: t.id) for p in t.parents if p in nodes]
    depth = {trial_id: 0}
    for i in sorted(nodes, reverse=True):  # children before parents, so each depth is final when used
        for p in nodes[i].parents:
            if p in nodes:
                depth[p] = max(depth.get(p, 0), depth[i] + 1)
    return Lineage(trial_id, nodes, edges, depth, sorted(missing))
