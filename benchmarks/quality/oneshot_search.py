"""End to end at equal CPU time: weight sharing (one-shot) against the best full-training search the
project has (regularized evolution with successive halving and weight inheritance), in the NB201 cell
space (or a define-by-run model function, --space MODULE:NAME), on MNIST-1D or FSDD.

Each method is one `nasforge.search` (no hand genome given); the printed CPU seconds are the whole
search process (supernet training, queries, the retrains of the returned network), one torch thread.
The full-training search stops asking for new trials once its CPU time reaches --cpu-budget less
the final retrain's estimate (--reserve) and then finishes what it started. Printed per run: the
returned genome, its validation and test accuracy (retrained from scratch for final_epochs), CPU.
For FSDD the six-speaker measure of a run is then

    python benchmarks/studies/fsdd_splits.py ../shared/data/fsdd/recordings --run RUN_DIR \
        --splits george jackson lucas nicolas theo yweweler

    python benchmarks/quality/oneshot_search.py --dataset mnist1d --method one-shot --seeds 0 1 2
    python benchmarks/quality/oneshot_search.py --dataset mnist1d --method evolution --cpu-budget 1200 --seeds 0 1 2
    python benchmarks/quality/oneshot_search.py --dataset fsdd:../shared/data/fsdd/recordings --method one-shot --seeds 0
    # the FSDD target: the hand CNN's skeleton, ops searched, the top 5 paths picked by 5 voice folds
    PYTHONPATH=benchmarks/quality python benchmarks/quality/oneshot_search.py --dataset fsdd:../shared/data/fsdd/recordings \
        --method one-shot --space ranking_families:fsdd_ops --seeds 0 --set 'dataset.layout="nhw"' \
        'training.cv_folds=5' 'evaluation.top_k=5'
    # against it at about the same CPU: full training over the same family
    PYTHONPATH=benchmarks/quality python benchmarks/quality/oneshot_search.py --dataset fsdd:../shared/data/fsdd/recordings \
        --method evolution --cpu-budget 1160 --space ranking_families:fsdd_ops --seeds 0 --set 'dataset.layout="nhw"'
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

import nasforge  # noqa: E402
from nasforge.budget import Budget  # noqa: E402

# FSDD as examples/fsdd.yaml reads it (test speaker theo, validation speaker yweweler, band_norm mean), but 1-D over
# time with the 40 mel bands as channels: a 64-channel 1-D cell net trains in a quarter of the 2-D 16-channel one's
# CPU and scored 93.8% on the validation speaker where the 2-D one scored 87.4% (--set dataset.layout="nhw"
# space.cell_channels=16 for the 2-D space).
FSDD = {"split": "speaker", "held_out_speaker": "theo", "val_speaker": "auto", "layout": "ncl", "band_norm": "mean"}
# Per dataset: data, training and the two methods' settings (sized so the one-shot search fits its budget).
TASKS = {
    "mnist1d": {
        "training": {"epochs": 9, "batch_size": 128, "lr": 3e-3, "final_epochs": 20},
        "one-shot": {"evaluation": {"name": "one-shot", "supernet_epochs": 50, "top_k": 3}, "budget": {"trials": 1000},
                     "strategy": {"name": "evolution", "population": 50, "sample_size": 10}},
        "evolution": {"fidelity": {"name": "halving", "min_epochs": 1, "eta": 3, "rungs": 3},
                      "training": {"inherit": True, "finetune_epochs": 2}, "budget": {"trials": 100000},
                      "strategy": {"name": "evolution", "population": 10, "sample_size": 3}},
        # ENAS: an LSTM controller, the shared weights trained from their initialisation between its queries
        # (one epoch of 25 steps every 10 queries: 100 epochs over 1000 queries).
        "enas": {"evaluation": {"name": "one-shot", "supernet_epochs": 0, "shared_steps": 25, "shared_every": 10, "top_k": 3},
                 "budget": {"trials": 1000}, "strategy": {"name": "reinforce", "controller": "lstm"}},
    },
    "fsdd": {
        "training": {"epochs": 9, "batch_size": 64, "lr": 3e-3, "label_smoothing": 0.1, "final_epochs": 15},
        "one-shot": {"evaluation": {"name": "one-shot", "supernet_epochs": 100, "top_k": 3}, "budget": {"trials": 500},
                     "strategy": {"name": "evolution", "population": 50, "sample_size": 10}},
        "evolution": {"fidelity": {"name": "halving", "min_epochs": 1, "eta": 3, "rungs": 3},
                      "training": {"inherit": True, "finetune_epochs": 2}, "budget": {"trials": 100000},
                      "strategy": {"name": "evolution", "population": 10, "sample_size": 3}},
    },
}


def merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for key, value in b.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def config_for(args: argparse.Namespace, seed: int) -> dict:
    task = "fsdd" if args.dataset.startswith("fsdd:") else "mnist1d"
    spec = TASKS[task]
    dataset = {"name": args.dataset, **(FSDD if task == "fsdd" else {})}
    space = {"name": "cell", **({"cell_channels": 64} if task == "fsdd" else {})}
    if args.space:  # a define-by-run model function (importable MODULE:NAME), e.g. ranking_families:fsdd_ops
        space = {"function": args.space}
    config = {"dataset": dataset, "space": space, "training": spec["training"], "seed": seed,
              "out": str(Path(args.out) / f"{args.method}-{seed}"), "progress": False}
    config = merge(config, spec[args.method])
    for override in args.set:
        path, _, value = override.partition("=")
        node = config
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = json.loads(value)
    return config


def run(args: argparse.Namespace, seed: int) -> dict:
    config = config_for(args, seed)
    if not args.resume:
        shutil.rmtree(config["out"], ignore_errors=True)
    start = time.process_time() - args.cpu_before  # a resumed run counts what its killed process had spent

    def stop_at_budget(study, record) -> None:
        if args.method == "evolution" and time.process_time() - start >= args.cpu_budget - args.reserve:
            study.budget = Budget(trials=study.store.count())  # finish what is out, ask for nothing more

    if args.resume:
        study = nasforge.search(resume=True, out=config["out"], progress=False, callbacks=(stop_at_budget,))
    else:
        study = nasforge.search(config, callbacks=(stop_at_budget,))
    cpu = time.process_time() - start
    final, best = study.final, study.store.trial(study.final["trial"])
    row = {"method": args.method, "seed": seed, "cpu": cpu, "trials": len(study.trials), "genome": best.genome,
           "val": final["val"]["accuracy"], "test": final["test"]["accuracy"], "search_reward": best.reward,
           "candidates": final.get("candidates"), "out": config["out"]}
    Path(config["out"], "benchmark.json").write_text(json.dumps(row))
    print(f"{args.method:<10} seed {seed}: test {row['test']:.4f}  val {row['val']:.4f}  {row['trials']} trials  "
          f"{cpu:.0f} CPU-s  {best.genome}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist1d")
    parser.add_argument("--method", choices=["one-shot", "evolution", "enas"], default="one-shot")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--cpu-budget", type=float, default=1800.0, help="evolution: CPU seconds of the whole search")
    parser.add_argument("--reserve", type=float, default=150.0, help="evolution: CPU seconds kept for the final retrain")
    parser.add_argument("--out", default="runs/oneshot-bench")
    parser.add_argument("--resume", action="store_true", help="resume the runs in --out (after a kill) instead of starting afresh")
    parser.add_argument("--cpu-before", type=float, default=0.0, help="with --resume: CPU seconds the killed process had spent")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides PATH=JSON, e.g. evaluation.supernet_epochs=30")
    parser.add_argument("--space", default=None, metavar="MODULE:NAME",
                        help="search this model function (all decisions c.module) instead of the cell space")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())} at start", flush=True)
    rows = [run(args, seed) for seed in args.seeds]
    tests = [r["test"] for r in rows]
    cpus = [r["cpu"] for r in rows]
    print(f"{args.method}: test accuracy mean {sum(tests) / len(tests):.4f} (min {min(tests):.4f}, max {max(tests):.4f}) "
          f"over seeds {' '.join(map(str, args.seeds))}; CPU-s mean {sum(cpus) / len(cpus):.0f} (max {max(cpus):.0f})")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"process CPU {usage.ru_utime + usage.ru_stime:.0f} s; load {' '.join(f'{x:.2f}' for x in os.getloadavg())} at end")


if __name__ == "__main__":
    main()
