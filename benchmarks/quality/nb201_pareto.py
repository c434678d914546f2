"""Multi-objective search on the NAS-Bench-201 table: accuracy (c10_valid_12ep) against lat_pixel3.

Part 1, Pareto search: the hypervolume of the front each search has found after `--queries`
distinct queries (repeats are free, as in the NB201 protocol), mean over `--runs` seeds, for our
NSGA-II, random search and Optuna's NSGAIISampler (when optuna is installed), beside the
hypervolume of the table's true front, the ceiling. All use the same reference point: the table's
worst accuracy and worst latency.

Part 2, a latency limit T: REINFORCE and regularized evolution on MnasNet's hard reward
`acc x (lat/T)^w` (w = 0 if lat <= T else -1), and evolution drawing only feasible cells (a
FeasibleSpace over the table's latency column). Each returns its best feasible cell by reward; the
mean report accuracy (c10_test_200ep_mean) of those cells is printed next to the best feasible cell
of the table.

    python benchmarks/quality/nb201_pareto.py --table ../shared/data/nb201/nb201.csv --runs 50 --queries 200 --target 6
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from nasforge.budget import Budget
from nasforge.evaluate.constraints import MnasNetReward, parse_constraints
from nasforge.evaluate.tabular import TabularBenchmark, TabularEvaluator, load_benchmark
from nasforge.objectives import hypervolume, pareto_mask
from nasforge.space.cell import CellSpace
from nasforge.strategy.base import Observation, Strategy
from nasforge.strategy.evolution import RegularizedEvolution
from nasforge.strategy.feasible import FeasibleSpace
from nasforge.strategy.nsga2 import NSGA2
from nasforge.strategy.random import RandomSearch
from nasforge.strategy.reinforce import Reinforce

SIGNAL, REPORT, LATENCY = "c10_valid_12ep", "c10_test_200ep_mean", "lat_pixel3"
MAX_REPEATS = 2000  # consecutive free repeats after which a run stops (a search that only re-proposes)


def run_strategy(strategy: Strategy, evaluator: TabularEvaluator) -> list[int]:
    """An ask/tell loop until the query budget is spent; the rows queried, in order. Each tell carries
    the candidate's metrics (its objectives) in the Observation, as the study's does."""
    rows, repeats, trial_of = [], 0, {}
    while not evaluator.exhausted and repeats < MAX_REPEATS:
        cand = strategy.ask()
        arch = evaluator.space.to_json(cand.genome)
        before = evaluator.queries
        result = evaluator.evaluate(cand.genome)
        new = evaluator.queries > before
        repeats = 0 if new else repeats + 1
        if new:
            rows.append(evaluator.bench.row(arch))
        reward = result.reward if result.status == "complete" else None
        strategy.tell(trial_of.setdefault(arch, len(trial_of) + 1), cand, Observation(reward, result.metrics))
    return rows


def run_optuna_nsga2(bench: TabularBenchmark, space: CellSpace, queries: int, seed: int) -> list[int]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.NSGAIISampler(seed=seed))
    evaluator = TabularEvaluator(bench, space, Budget(trials=queries))
    rows, repeats = [], 0
    while not evaluator.exhausted and repeats < MAX_REPEATS:
        trial = study.ask()
        choices = [trial.suggest_categorical(f"d{i}", list(range(n))) for i, n in enumerate(space.decisions())]
        genome = space.decode(choices)
        before = evaluator.queries
        answer = evaluator.query(genome)
        repeats = 0 if evaluator.queries > before else repeats + 1
        if evaluator.queries > before:
            rows.append(answer.row)
        study.tell(trial, [float(bench.signal[answer.row]), float(bench.objectives[LATENCY][answer.row])])
    return rows


def front_volume(points: np.ndarray, rows: list[int], ref: np.ndarray) -> float:
    return hypervolume(points[rows], ref)


def pareto_part(bench: TabularBenchmark, space: CellSpace, args: argparse.Namespace) -> dict[str, list[list[int]]]:
    points = np.column_stack([-bench.signal, bench.objectives[LATENCY]])  # minimise both
    ref = points.max(axis=0)  # the worst accuracy and the worst latency of the table
    true_front = np.flatnonzero(pareto_mask(points))
    ceiling = hypervolume(points, ref)
    print(f"objectives: {SIGNAL} (max) vs {LATENCY} (min); reference point: {SIGNAL}={-ref[0]:g}, {LATENCY}={ref[1]:g}")
    print(f"true Pareto front of the table: {len(true_front)} of {len(points)} cells, hypervolume {ceiling:.2f} (the ceiling)")

    makers: dict[str, Callable[[int], list[int]]] = {
        "nsga2 (ours)": lambda s: run_strategy(NSGA2(space, s, objectives=(SIGNAL, LATENCY)),
                                               TabularEvaluator(bench, space, Budget(trials=args.queries))),
        "random": lambda s: run_strategy(RandomSearch(space, s), TabularEvaluator(bench, space, Budget(trials=args.queries))),
    }
    try:
        import optuna  # noqa: F401

        makers["optuna NSGAIISampler"] = lambda s: run_optuna_nsga2(bench, space, args.queries, s)
    except ImportError:
        print("optuna NSGAIISampler: skipped (pip install -c constraints.txt optuna)")
    runs: dict[str, list[list[int]]] = {}
    volumes: dict[str, np.ndarray] = {}
    for name, make in makers.items():
        start = time.perf_counter()
        runs[name] = [make(args.seed + r) for r in range(args.runs)]
        volumes[name] = np.array([front_volume(points, rows, ref) for rows in runs[name]])
        v, q = volumes[name], np.mean([len(rows) for rows in runs[name]])
        print(f"{name:<22} hypervolume {v.mean():8.2f} ± {v.std(ddof=1) / math.sqrt(len(v)):.2f} (s.e.)  "
              f"= {100 * v.mean() / ceiling:.2f}% of the ceiling  [{len(v)} runs, {q:.0f} queries each, "
              f"{time.perf_counter() - start:.1f}s]")
    ours = volumes["nsga2 (ours)"]
    for name, v in volumes.items():
        if name != "nsga2 (ours)":
            print(f"nsga2 (ours) vs {name}: higher hypervolume in {int(np.sum(ours > v))} of {len(v)} seeds, "
                  f"mean difference {float(np.mean(ours - v)):+.2f}")
    if args.plot:
        plot_fronts(points, ref, true_front, {n: r[0] for n, r in runs.items()}, args.plot)
    return runs


def plot_fronts(points: np.ndarray, ref: np.ndarray, true_front: np.ndarray, first_runs: dict[str, list[int]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter(points[:, 1], -points[:, 0], s=2, color="0.85", label="all cells")
    order = true_front[np.argsort(points[true_front, 1])]
    ax.step(points[order, 1], -points[order, 0], where="post", color="black", label="true front")
    for name, rows in first_runs.items():
        front = np.array(rows)[pareto_mask(points[rows])]
        front = front[np.argsort(points[front, 1])]
        ax.step(points[front, 1], -points[front, 0], where="post", marker="o", ms=3, label=f"{name}, seed 0")
    ax.set_xlabel(f"{LATENCY} (ms)")
    ax.set_ylabel(SIGNAL)
    ax.set_ylim(bottom=-ref[0])
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    print(f"plot: {path}")


def constrained_part(bench: TabularBenchmark, space: CellSpace, args: argparse.Namespace) -> None:
    T = args.target
    latency, report = bench.objectives[LATENCY], bench.report_values
    feasible = latency <= T
    best_row = int(np.flatnonzero(feasible)[np.argmax(report[feasible])])
    top_signal = np.flatnonzero(feasible)[np.argmax(bench.signal[feasible])]
    print(f"\nlatency limit T = {T:g} ms on {LATENCY}: {int(feasible.sum())} of {len(feasible)} cells feasible")
    print(f"best feasible cell of the table: {REPORT} {report[best_row]:.2f} ({bench.table.archs[best_row]}); "
          f"the feasible cell with the best {SIGNAL} has {REPORT} {report[top_signal]:.2f}")
    hard = MnasNetReward.of(LATENCY, T, "hard")

    def evaluator(scalarized: bool) -> TabularEvaluator:
        return TabularEvaluator(bench, space, Budget(trials=args.queries), scalarization=hard if scalarized else None)

    def feasible_space(ev: TabularEvaluator) -> FeasibleSpace:
        return FeasibleSpace(space, parse_constraints([f"{LATENCY}<={T}"]), lambda g, which: ev.columns(g, list(which)) or {})

    searches: dict[str, Callable[[int], tuple[list[int], TabularEvaluator]]] = {}

    def scalarized(make: Callable[[int], Strategy]) -> Callable[[int], tuple[list[int], TabularEvaluator]]:
        def run(seed: int) -> tuple[list[int], TabularEvaluator]:
            ev = evaluator(True)
            return run_strategy(make(seed), ev), ev
        return run

    def constrained(seed: int) -> tuple[list[int], TabularEvaluator]:
        ev = evaluator(False)
        return run_strategy(RegularizedEvolution(feasible_space(ev), seed, population=10, sample_size=3), ev), ev

    searches["reinforce, mnasnet hard"] = scalarized(lambda s: Reinforce(space, s, controller="independent"))
    searches["evolution, mnasnet hard"] = scalarized(lambda s: RegularizedEvolution(space, s, population=10, sample_size=3))
    searches["evolution, feasible space"] = constrained
    for name, run in searches.items():
        returned, best_feasible, feasible_share = [], [], []
        for r in range(args.runs):
            rows, _ = run(args.seed + r)
            feasible_share.append(float(np.mean(feasible[rows])))
            # The search's own answer: its best cell by the reward it optimised (the hard MnasNet
            # reward; for the feasible-space run every cell is feasible and this is the best signal).
            returned.append(max(rows, key=lambda row: (hard(float(bench.signal[row]), {LATENCY: float(latency[row])}), -row)))
            ok = [row for row in rows if feasible[row]]
            if ok:
                best_feasible.append(max(ok, key=lambda row: (bench.signal[row], -row)))
        got = np.array(returned)
        values = report[got[feasible[got]]]
        print(f"{name:<26} returned cells feasible in {int(feasible[got].sum())}/{args.runs} runs, their {REPORT} "
              f"{values.mean():.2f} ± {values.std():.2f} (best feasible cell of the table {report[best_row]:.2f}); "
              f"best feasible cell found by signal {report[best_feasible].mean():.2f}; "
              f"{100 * np.mean(feasible_share):.0f}% of queries feasible")


def main() -> None:
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default=str(Path(__file__).resolve().parents[3] / "shared/data/nb201/nb201.csv"))
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", type=float, default=6.0, help=f"latency limit T on {LATENCY} (ms) for part 2")
    parser.add_argument("--plot", default=None, help="PNG of the fronts of seed 0 against the true front")
    args = parser.parse_args()
    bench = load_benchmark(args.table, signal=SIGNAL, report=REPORT, objectives=(LATENCY,))
    space = CellSpace()
    pareto_part(bench, space, args)
    constrained_part(bench, space, args)


if __name__ == "__main__":
    main()
