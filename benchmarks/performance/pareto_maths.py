"""nasforge's own Pareto arithmetic (objectives.py) against moocore, the maintained C library of it:
the same answers, and CPU microseconds per call, at the sizes a search meets (a study's trials: tens
to a thousand points, two or three objectives).

    pip install moocore        # only for this comparison; nasforge does not depend on it
    python benchmarks/performance/pareto_maths.py [--sizes 20 100 1000] [--objectives 2 3] [--repeats 7]

Printed per size: whether the non-dominated masks, the Pareto ranks (fronts of non_dominated_sort)
and the hypervolumes agree, and the median CPU µs per call of each (interleaved rounds, so a load
change hits both).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from nasforge.objectives import hypervolume, non_dominated_sort, pareto_mask


def cpu_us(fn, calls: int) -> float:
    start = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - start) / calls * 1e6


def timings(points: np.ndarray, ref: np.ndarray, calls: int, repeats: int, moocore) -> dict[str, list[float]]:
    """CPU µs per call of each function, `repeats` interleaved rounds (the slow Python ranks: a tenth of the calls)."""
    fns = {
        "mask": (lambda: pareto_mask(points), calls),
        "mask_m": (lambda: moocore.is_nondominated(points, keep_weakly=True), calls),
        "rank": (lambda: non_dominated_sort(points), max(1, calls // 10)),
        "rank_m": (lambda: moocore.pareto_rank(points), calls),
        "hv": (lambda: hypervolume(points, ref), max(1, calls // 10)),
        "hv_m": (lambda: moocore.hypervolume(points, ref=ref), calls),
    }
    rows: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, (fn, count) in fns.items():
            rows[name].append(cpu_us(fn, count))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 100, 1000])
    parser.add_argument("--objectives", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    import moocore

    print(f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())} at start; moocore {moocore.__version__}")
    print(f"{'points':>6} {'obj':>3} {'same':>5}  {'mask ours':>9} {'moocore':>8}  {'ranks ours':>10} {'moocore':>8}  "
          f"{'HV ours':>9} {'moocore':>8}   (median CPU µs per call)")
    for m in args.objectives:
        for n in args.sizes:
            rng = np.random.default_rng(n * 10 + m)
            # Trials of a search: a cloud with a front, rounded as accuracies and sizes are (ties happen).
            points = np.round(rng.random((n, m)) ** 2, 3)
            ref = points.max(axis=0) + 0.1
            ranks = np.empty(n, dtype=int)
            for level, front in enumerate(non_dominated_sort(points), start=1):
                ranks[front] = level
            same = (np.array_equal(pareto_mask(points), moocore.is_nondominated(points, keep_weakly=True))
                    and np.array_equal(ranks, moocore.pareto_rank(points) + 1)  # moocore counts fronts from 0
                    and abs(hypervolume(points, ref) - moocore.hypervolume(points, ref=ref)) <= 1e-9)
            calls = max(1, 2000 // n)
            rows = timings(points, ref, calls, args.repeats, moocore)
            med = {k: statistics.median(v) for k, v in rows.items()}
            print(f"{n:>6} {m:>3} {str(same):>5}  {med['mask']:>9.0f} {med['mask_m']:>8.0f}  {med['rank']:>10.0f} "
                  f"{med['rank_m']:>8.0f}  {med['hv']:>9.0f} {med['hv_m']:>8.0f}")
    print(f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())} at end")


if __name__ == "__main__":
    main()
