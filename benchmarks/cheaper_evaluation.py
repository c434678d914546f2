"""MNIST-1D: what inheritance, successive halving and zero-cost pre-screening buy, alone and together.

Same strategy (regularized evolution), same seeds, same trial budget. For each mechanism prints
the best test accuracy of the returned model (search weights, no retraining), the CPU seconds of
the whole search, and the CPU seconds until the best validation accuracy first reached --target.
Also prints the Spearman rank correlation of the zero-cost proxies with trained accuracy.

    python benchmarks/cheaper_evaluation.py                  # 3 seeds x 5 settings
    python benchmarks/cheaper_evaluation.py --seeds 0 --trials 12
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

SETTINGS = {
    "plain": {},
    "inherit": {"inherit": True, "finetune_epochs": 2},
    "halving": {"fidelity": "halving", "min_epochs": 1, "eta": 3, "rungs": 3},
    "prescreen": {"prescreen": "synflow", "prescreen_pool": 10},
    "all": {"inherit": True, "finetune_epochs": 2, "fidelity": "halving", "min_epochs": 1, "eta": 3, "rungs": 3,
            "prescreen": "synflow", "prescreen_pool": 10},
}


def run(setting: str, seed: int, args: argparse.Namespace) -> dict:
    import nasforge

    torch.set_num_threads(1)
    out = Path(args.out) / f"{setting}-{seed}"
    shutil.rmtree(out, ignore_errors=True)
    start = time.process_time()
    reached: list[float] = []

    def watch(study, record) -> None:
        if not reached and record.reward is not None and record.status == "complete" and record.reward >= args.target:
            reached.append(time.process_time() - start)

    study = nasforge.search(dataset="mnist1d", strategy="evolution", trials=args.trials, epochs=args.epochs, seed=seed,
                            out=str(out), progress=False, proxies=True, callbacks=(watch,), **SETTINGS[setting])
    cpu = time.process_time() - start
    trials = study.trials
    row = {"setting": setting, "seed": seed, "test": study.final["test"]["accuracy"], "best_val": study.best.reward, "cpu": cpu,
           "to_target": reached[0] if reached else None,
           "proxy_pairs": [(t.metrics.get("synflow"), t.metrics.get("naswot"), t.reward) for t in trials
                           if t.status == "complete" and "synflow" in t.metrics and t.metrics.get("fidelity", args.epochs) == args.epochs
                           and "inherited_tensors" not in t.metrics]}
    hit = "-" if row["to_target"] is None else f"{row['to_target']:.0f}s"
    print(f"  {setting:<9} seed {seed}: test {row['test']:.4f}  best val {row['best_val']:.4f}  cpu {cpu:6.0f}s  "
          f"to {args.target}: {hit}", flush=True)
    return row


def spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--target", type=float, default=0.96, help="validation accuracy whose CPU time to reach is reported")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", default="runs/bench-cheaper")
    args = parser.parse_args()
    print(f"MNIST-1D, regularized evolution, {args.trials} trials, {args.epochs} epochs per plain trial, seeds {args.seeds}; "
          f"1 thread per search; CPU = process CPU time", flush=True)
    jobs = [(s, seed) for s in args.settings for seed in args.seeds]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            rows = list(pool.map(run, *zip(*jobs), [args] * len(jobs)))
    else:
        rows = [run(s, seed, args) for s, seed in jobs]

    plain_cpu = statistics.mean(r["cpu"] for r in rows if r["setting"] == "plain") if any(r["setting"] == "plain" for r in rows) else None
    print(f"\n{'setting':<10} {'test acc (mean ± sd)':>22} {'best val':>9} {'cpu s':>8} {'vs plain':>9} {f'cpu s to {args.target}':>16}")
    for s in args.settings:
        r = [row for row in rows if row["setting"] == s]
        tests = [x["test"] for x in r]
        sd = statistics.stdev(tests) if len(tests) > 1 else 0.0
        cpu = statistics.mean(x["cpu"] for x in r)
        hits = [x["to_target"] for x in r if x["to_target"] is not None]
        to_target = f"{statistics.mean(hits):.0f} ({len(hits)}/{len(r)} runs)" if hits else f"never (0/{len(r)})"
        ratio = f"{cpu / plain_cpu:.2f}x" if plain_cpu else "-"
        print(f"{s:<10} {statistics.mean(tests):>13.4f} ± {sd:.4f} {statistics.mean(x['best_val'] for x in r):>9.4f} {cpu:>8.0f} "
              f"{ratio:>9} {to_target:>16}")

    pairs = [p for row in rows for p in row["proxy_pairs"] if None not in p]
    if len(pairs) >= 5:
        syn, nwot, acc = zip(*pairs)
        print(f"\nzero-cost proxies vs trained validation accuracy ({len(pairs)} trials trained from scratch at {args.epochs} epochs): "
              f"Spearman synflow {spearman(syn, acc):.3f}, naswot {spearman(nwot, acc):.3f}")


if __name__ == "__main__":
    main()
