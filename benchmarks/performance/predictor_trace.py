"""The predictor strategy's every query on NAS-Bench-201, per seed, as a digest, with its CPU time.

For refactoring the predictor (strategy/predictor.py, strategy/surrogate/) without changing what it
does: run this on two checkouts and compare the digests (identical digests: the same architectures
queried in the same order, hence the same returned architecture) and the CPU microseconds per query
(ask + table look-up + tell; the minimum of --repeat runs per seed, with the load printed, since
other jobs inflate CPU time too).

    PYTHONPATH=src python benchmarks/performance/predictor_trace.py --seeds 10 --variant bench
    PYTHONPATH=/other/checkout/src python benchmarks/performance/predictor_trace.py --seeds 10 --variant bench

Variants: bench (the harness's protocol: init 40, kappa 3), default (the class defaults), pool (a
fresh pool of mutants and random samples beside the neighbourhood cache), refit (the length scale
chosen by marginal likelihood, everything rebuilt every 16 members, wider two-edit neighbourhoods).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
from pathlib import Path

from nasforge.bench.harness import NB201_COST, make_strategy
from nasforge.budget import Budget
from nasforge.evaluate.tabular import TabularBenchmark, TabularEvaluator, TabularSpec
from nasforge.space import SPACES
from nasforge.strategy.base import Observation
from nasforge.strategy.predictor import PredictorEvolution

VARIANTS = {"default": {}, "pool": {"init": 20, "pool": 200, "random_pool": 50, "kappa": 2.0},
            "refit": {"length_scale": None, "far_neighbours": 2}}
TABLE = Path(os.environ.get("NASFORGE_DATA", Path(__file__).resolve().parents[3] / "shared/data")) / "nb201/nb201.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default=str(TABLE))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="runs per seed; the fastest counts")
    parser.add_argument("--variant", default="bench", choices=["bench", *VARIANTS])
    args = parser.parse_args()
    if not Path(args.table).exists():
        sys.exit(f"no table at {args.table} (give --table)")
    bench = TabularBenchmark(args.table, TabularSpec("arch_str", "c10_valid_12ep", "c10_test_200ep_mean", NB201_COST))
    space = SPACES["cell"]()
    print("load", os.getloadavg())
    digests, fastest = [], []
    for seed in range(args.seeds):
        times = []
        for _ in range(args.repeat):
            evaluator = TabularEvaluator(bench, space, Budget(None, 12000))
            strategy = (make_strategy("predictor", space, seed) if args.variant == "bench"
                        else PredictorEvolution(space, seed, **VARIANTS[args.variant]))
            digest, queries, best, trials = hashlib.sha256(), 0, None, {}
            cpu = time.process_time()
            while not evaluator.exhausted:
                candidate = strategy.ask()
                if candidate is None:
                    break
                answer = evaluator.query(candidate.genome)
                digest.update(answer.arch.encode())
                queries += 1
                if best is None or answer.reward > best[0]:
                    best = (answer.reward, answer.arch)
                trial = trials.setdefault(answer.arch, len(trials) + 1)
                strategy.tell(trial, candidate, Observation(answer.reward, {}, None))
            times.append((time.process_time() - cpu) / queries * 1e6)
        digests.append(digest.hexdigest()[:16])
        fastest.append(min(times))
        print(f"seed {seed}: {queries} queries, returned {best[1]} (signal {best[0]}), digest {digests[-1]}, "
              f"cpu us/query {min(times):.1f}")
    print("digest of all seeds", hashlib.sha256("".join(digests).encode()).hexdigest()[:16])
    print(f"cpu us/query (fastest of {args.repeat} per seed): mean {statistics.mean(fastest):.1f} "
          f"median {statistics.median(fastest):.1f}")
    print("load", os.getloadavg())


if __name__ == "__main__":
    main()
