"""MNIST-1D: what inheritance, successive halving and zero-cost pre-screening buy, alone and together.

Same strategy (regularized evolution), same seeds, same trial budget. For each mechanism prints
the best test accuracy of the returned model (search weights, no retraining), the CPU seconds of
the whole search, and the CPU seconds the search had consumed when a trial's validation accuracy
first reached a fixed target (by default the median, over seeds, of the plain search's final
best validation accuracy; "never" when a run did not get there). CPU is process CPU time of the
search (one torch thread), not wall time. Also prints the pre-screen's own cost per candidate,
the mean size of the trained candidates, and the Spearman rank correlation of the zero-cost
proxies with trained accuracy (computed after the timed searches, outside their CPU time).

    python benchmarks/performance/cheaper_evaluation.py                  # 3 seeds x 5 settings
    python benchmarks/performance/cheaper_evaluation.py --seeds 0 1 2 3 4 --settings plain inherit halving prescreen all halving+prescreen
    python benchmarks/performance/cheaper_evaluation.py --seeds 0 --trials 12 --settings plain all
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from nasforge.bench.machine import finish, machine_record  # noqa: E402

HALVING = {"fidelity": "halving", "min_epochs": 1, "eta": 3, "rungs": 3}
PRESCREEN = {"prescreen": "synflow", "prescreen_pool": 5}
SETTINGS = {
    # Inheritance is on by default for classifiers: the settings without it say so.
    "plain": {"inherit": False},
    "inherit": {"inherit": True, "finetune_epochs": 2},
    "halving": {"inherit": False, **HALVING},
    "prescreen": {"inherit": False, **PRESCREEN},
    "all": {"inherit": True, "finetune_epochs": 2, **HALVING, **PRESCREEN},
    "halving+prescreen": {"inherit": False, **HALVING, **PRESCREEN},  # "all" without inheritance: what inheriting adds there
}
RESULTS = Path(__file__).resolve().parents[1] / "results"
DEFAULT_SETTINGS = ["plain", "inherit", "halving", "prescreen", "all"]
LABELS = {
    "plain": "plain ({epochs} epochs per trial)",
    "inherit": "inherit (2-epoch fine-tune)",
    "halving": "halving (1/3/9 epochs, eta 3)",
    "prescreen": "prescreen (synflow, pool 5, params <= pool median)",
    "all": "all three",
    "halving+prescreen": "halving + prescreen (no inheritance)",
}


def run(setting: str, seed: int, args: argparse.Namespace) -> dict:
    import nasforge

    torch.set_num_threads(1)
    out = Path(args.out) / f"{setting}-{seed}"
    shutil.rmtree(out, ignore_errors=True)
    events: list[tuple[float, float]] = []  # (CPU seconds so far, validation accuracy) per finished trial or promotion

    def watch(study, record) -> None:
        if record.reward is not None and record.status == "complete":
            events.append((time.process_time() - start, record.reward))

    start = time.process_time()
    study = nasforge.search(dataset="mnist1d", strategy="evolution", trials=args.trials, epochs=args.epochs, seed=seed,
                            out=str(out), progress=False, callbacks=(watch,), **SETTINGS[setting])
    cpu = time.process_time() - start
    screen = getattr(study.strategy.space, "scored", None), getattr(study.strategy.space, "seconds", None)
    trials = [t for t in study.trials if t.status == "complete"]
    row = {"setting": setting, "seed": seed, "test": study.final["test"]["accuracy"], "best_val": study.best.reward,
           "cpu": cpu, "events": events, "screened": screen[0], "screen_cpu": screen[1],
           "mparams": statistics.mean(t.params for t in trials) / 1e6 if trials else float("nan"),
           "epochs": sum(len(t.curve) for t in study.trials),
           "proxy_pairs": proxy_pairs(study, args) if setting == "plain" else []}
    Path(args.out, f"{setting}-{seed}.json").write_text(json.dumps(row))
    print(f"  {setting:<9} seed {seed}: test {row['test']:.4f}  best val {row['best_val']:.4f}  cpu {cpu:6.0f}s  "
          f"epochs trained {row['epochs']}", flush=True)
    return row


def proxy_pairs(study, args: argparse.Namespace) -> list[tuple[float, float, float]]:
    """(synflow, naswot, validation accuracy) of the plain search's trials, each proxy computed on the
    very initial weights the trial trained from (built again under its seed, after the timed search)."""
    from nasforge.evaluate.proxies import score_proxies

    evaluator = study.evaluator
    pairs = []
    for t in study.trials:
        if t.status != "complete" or len(t.curve) != args.epochs:
            continue
        torch.manual_seed(t.seed)
        model = study.space.build(study.space.from_json(t.genome))
        p = score_proxies(model, evaluator.data.x_train[:128])
        pairs.append((p["synflow"], p["naswot"], t.reward))
    return pairs


def proxy_cost(n: int = 40) -> None:
    """CPU per candidate of the pre-screen, as it was (build + synflow in float64, proxy alone) and as
    it is (build + parameter count + synflow in float32), on the same sampled MNIST-1D candidates."""
    import numpy as np

    from nasforge.config import build_config
    from nasforge.data.load import load_data_for
    from nasforge.evaluate.proxies import synflow
    from nasforge.space.factory import make_space_for_data
    from nasforge.strategy.prescreen import ProxyScreenedSpace

    torch.set_num_threads(1)
    config = build_config({}, dataset="mnist1d", strategy="evolution", out="runs/proxy-cost")
    data = load_data_for(config)
    space = make_space_for_data(config, data)
    rng = np.random.default_rng(0)
    genomes = [space.sample(rng) for _ in range(n)]
    shape = tuple(data.x_train.shape[1:])
    for g in genomes[:3]:  # warm up torch's kernels
        synflow(space.build(g), shape, inplace=True)
    start = time.process_time()
    for g in genomes:
        torch.manual_seed(0)
        synflow(space.build(g), shape, inplace=True, dtype=torch.float64)
    before = (time.process_time() - start) / n
    screen = ProxyScreenedSpace(space, data.x_train[:128], "synflow", pool=5)
    for g in genomes:
        screen.score(g)
    after = screen.seconds / screen.scored
    print(f"pre-screen CPU per candidate ({n} sampled candidates): before (build + float64 synflow) {1000 * before:.1f} ms, "
          f"now (build + parameter count + float32 synflow) {1000 * after:.1f} ms", flush=True)


def cpu_to_target(events: list[tuple[float, float]], target: float) -> float | None:
    return next((cpu for cpu, reward in events if reward >= target), None)


def spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--settings", nargs="+", default=DEFAULT_SETTINGS, choices=list(SETTINGS))
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--target", type=float, default=None,
                        help="validation accuracy whose CPU time to reach is reported (default: median of plain's final best val)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", default="runs/bench-cheaper", help="run directories and one JSON row per search")
    parser.add_argument("--json", default=str(RESULTS / "cheaper_evaluation.json"),
                        help="every search's row and the settings, kept with the other results (default benchmarks/results/)")
    parser.add_argument("--reuse", action="store_true", help="reuse the rows of searches already finished under --out")
    parser.add_argument("--proxy-cost-only", action="store_true", help="only measure the pre-screen's CPU per candidate")
    args = parser.parse_args()
    proxy_cost()
    if args.proxy_cost_only:
        return
    print(f"MNIST-1D, regularized evolution, {args.trials} trials, {args.epochs} epochs per plain trial, seeds {args.seeds}; "
          f"1 thread per search; CPU = process CPU time", flush=True)
    machine = machine_record()
    jobs = [(s, seed) for seed in args.seeds for s in args.settings]
    saved = {}
    if args.reuse:  # rows of searches an earlier invocation finished (each search writes its row when done)
        for s, seed in jobs:
            path = Path(args.out, f"{s}-{seed}.json")
            if path.exists():
                saved[s, seed] = json.loads(path.read_text())
        print(f"reusing {len(saved)} finished searches from {args.out}", flush=True)
    todo = [job for job in jobs if job not in saved]
    if args.jobs > 1 and todo:
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            fresh = list(pool.map(run, *zip(*todo), [args] * len(todo)))
    else:
        fresh = [run(s, seed, args) for s, seed in todo]
    saved.update({job: row for job, row in zip(todo, fresh)})
    rows = [saved[job] for job in jobs]
    summary = summarize(rows, args)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"command": vars(args), "machine": finish(machine), "summary": summary, "rows": rows},
                                          indent=1))
    print(f"rows and summary written to {args.json}", flush=True)

    print(f"\nvalidation-accuracy target: {summary['target']:.4f} ({summary['target_from']})")
    print(f"{'setting':<51} {'test acc (mean ± sd)':>20} {'best val':>9} {'CPU s':>6} {'vs plain':>9} "
          f"{'CPU s to target':>18} {'Mparams':>8}")
    for r in summary["settings"]:
        to_target = f"{r['cpu_to_target']:.0f} ({r['reached']}/{r['runs']} runs)" if r["reached"] else f"never (0/{r['runs']})"
        ratio = f"{r['vs_plain']:.2f}x" if r["vs_plain"] is not None else "-"
        print(f"{r['label']:<51} {r['test_mean']:>11.4f} ± {r['test_sd']:.4f} {r['best_val']:>9.4f} "
              f"{r['cpu']:>6.0f} {ratio:>9} {to_target:>18} {r['mparams']:>8.3f}")
    print("(CPU s to target: mean over the runs that reached it; Mparams: mean parameters of the trained candidates)")
    screen = summary["prescreen"]
    if screen:
        print(f"pre-screen: {screen['candidates']} candidates built and scored in {screen['searches']} searches, "
              f"{screen['ms_per_candidate']:.1f} ms CPU each (build + parameter count + float32 synflow), "
              f"{screen['seconds_per_search']:.1f} s per search")
    proxies = summary["proxies"]
    if proxies:
        print(f"zero-cost proxies vs trained validation accuracy ({proxies['trials']} plain trials, {args.epochs} epochs "
              f"from scratch): Spearman synflow {proxies['synflow']:.3f}, naswot {proxies['naswot']:.3f}")


def summarize(rows: list[dict], args: argparse.Namespace) -> dict:
    """The figures the script prints, computed once: printed here and kept in the JSON, from which the
    docs page's table is built (docs/hooks/results.py)."""
    plain = [r for r in rows if r["setting"] == "plain"]
    plain_cpu = statistics.mean(r["cpu"] for r in plain) if plain else None
    target, target_from = args.target, "--target"
    if target is None:
        target = statistics.median(r["best_val"] for r in plain) if plain else 0.95
        target_from = "median final best val of plain"
    settings = []
    for s in args.settings:
        r = [row for row in rows if row["setting"] == s]
        tests = [x["test"] for x in r]
        cpu = statistics.mean(x["cpu"] for x in r)
        hits = [h for h in (cpu_to_target(x["events"], target) for x in r) if h is not None]
        settings.append({"setting": s, "label": LABELS[s].format(epochs=args.epochs), "runs": len(r),
                         "test_mean": statistics.mean(tests), "test_sd": statistics.stdev(tests) if len(tests) > 1 else 0.0,
                         "best_val": statistics.mean(x["best_val"] for x in r), "cpu": cpu,
                         "vs_plain": cpu / plain_cpu if plain_cpu else None,
                         "cpu_to_target": statistics.mean(hits) if hits else None, "reached": len(hits),
                         "mparams": statistics.mean(x["mparams"] for x in r)})
    screened = [r for r in rows if r["screened"]]
    prescreen = None
    if screened:
        n = sum(r["screened"] for r in screened)
        prescreen = {"candidates": n, "searches": len(screened),
                     "ms_per_candidate": 1000 * sum(r["screen_cpu"] for r in screened) / n,
                     "seconds_per_search": sum(r["screen_cpu"] for r in screened) / len(screened)}
    pairs = [p for row in rows for p in row["proxy_pairs"] if None not in p]
    proxies = None
    if len(pairs) >= 5:
        syn, nwot, acc = zip(*pairs)
        proxies = {"trials": len(pairs), "synflow": spearman(syn, acc), "naswot": spearman(nwot, acc)}
    return {"target": target, "target_from": target_from, "settings": settings, "prescreen": prescreen, "proxies": proxies}


if __name__ == "__main__":
    main()
