"""What recording and replaying a model function's decisions costs, beyond building the model.

The family is examples/own_model.py's small ResNet (width, depth 1-4, per block kernel and type).
For each operation of the define-by-run space the CPU time per candidate is compared with building
the same networks by calling the function with a bare stand-in for `Choices` that hands out fixed
values and records nothing:

- build: `space.build(genome)` (replay, real weights) vs the function on the CPU;
- sample / mutate / crossover / decode: recording runs (on the meta device) vs the function on meta.

Overhead = operation - bare build of the same genomes. Printed: median and spread over repeats,
with the machine's load. Run: python benchmarks/performance/define_by_run.py [--candidates 300 --repeats 7]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasforge.space.function import FunctionSpace

REPO = Path(__file__).resolve().parents[2]


def _family() -> Any:
    spec = importlib.util.spec_from_file_location("own_model", REPO / "examples" / "own_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_model


class Bare:
    """Hands out the values of a genome; no checks, no recording: the floor a model function costs."""

    def __init__(self, values: dict[str, Any]):
        self.values = values

    def choice(self, name: str, options: Any) -> Any:
        return self.values[name]

    def int(self, name: str, low: int, high: int, step: int = 1) -> int:
        return self.values[name]


def _cpu_ms(fn: Any, items: list[Any]) -> float:
    start = time.process_time()
    for item in items:
        fn(item)
    return 1000 * (time.process_time() - start) / len(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    make_model = _family()
    start = time.process_time()
    space = FunctionSpace(make_model)
    explore_ms = 1000 * (time.process_time() - start)
    rng = np.random.default_rng(0)
    genomes = [space.sample(rng) for _ in range(args.candidates)]
    pairs = list(zip(genomes, genomes[1:] + genomes[:1]))
    codes = [space.encode(g) for g in genomes]

    def bare(meta: bool) -> Any:
        def run(g: Any) -> Any:
            with torch.device("meta") if meta else torch.device("cpu"):
                return make_model(Bare(dict(g)))
        return run

    ops = {
        "build (replay, CPU weights)": (lambda g: space.build(g), genomes, bare(False)),
        "sample (record, meta)": (lambda g: space.sample(rng), genomes, bare(True)),
        "mutate (record, meta)": (lambda g: space.mutate(g, rng), genomes, bare(True)),
        "crossover (record, meta)": (lambda p: space.crossover(p[0], p[1], rng), pairs, bare(True)),
        "decode (record, meta)": (lambda c: space.decode(c), codes, bare(True)),
    }
    # The bare builds of crossover / decode go over the same genomes as the others (same networks).
    rows = []
    for name, (op, items, floor) in ops.items():
        overheads, floors = [], []
        for _ in range(args.repeats):
            base = _cpu_ms(floor, genomes)
            cost = _cpu_ms(op, items)
            floors.append(base)
            overheads.append(cost - base)
        rows.append((name, statistics.median(floors), statistics.median(overheads), min(overheads), max(overheads)))
    load = os.getloadavg()
    print(f"define-by-run overhead per candidate, {args.candidates} candidates x {args.repeats} repeats, CPU time, "
          f"torch threads 1, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"family: examples/own_model.py make_model ({len(space.decisions())} decisions); exploration at construction: "
          f"{explore_ms:.0f} ms CPU once")
    print(f"{'operation':<30} {'bare build ms':>14} {'overhead ms':>12} {'(min .. max)':>18}")
    for name, base, over, lo, hi in rows:
        print(f"{name:<30} {base:>14.3f} {over:>12.3f} {f'({lo:.3f} .. {hi:.3f})':>18}")
    worst = max(r[2] for r in rows)
    print(f"largest median overhead: {worst:.3f} ms per candidate ({'within' if worst <= 1.0 else 'OVER'} the 1 ms target)")


if __name__ == "__main__":
    main()
