"""How well a trained supernet ranks architectures: Kendall's tau between supernet scores and the
validation accuracy of the same architectures trained stand-alone, per supernet option.

N architectures are drawn uniformly from the NB201 cell space (seeded), or from a define-by-run model
function whose decisions are all `c.module` (`--space FILE.py:NAME`, e.g. ranking_families.py), and each is trained from
scratch on the task (AdamW, cosine, the project's defaults; `--standalone-epochs`), with one or more
seeds: tau between two stand-alone seeds is the ceiling any cheaper estimate can reach. Then, per
setting, a supernet is trained (SPOS uniform or FairNAS fair sampling, learning rate, epochs) and
every architecture is scored with its shared weights (batch norm recalibrated / batch statistics /
stale). Printed: tau and Spearman's rho over all N and over the better half (by stand-alone accuracy,
where a search decides), the supernet's training CPU seconds and the CPU milliseconds per query.
Stand-alone results are cached in --cache (a JSON file), so settings can be added without retraining;
supernet scores in --scores-cache, so `--scores-only` can score the settings while the stand-alone
training still runs (in another process) and a later run only computes the correlations.

    python benchmarks/quality/supernet_ranking.py --dataset mnist1d --archs 64 --seeds 0 1
    python benchmarks/quality/supernet_ranking.py --settings uniform fair bn-batch bn-stale --supernet-seeds 0 1 2
    python benchmarks/quality/supernet_ranking.py --space benchmarks/quality/ranking_families.py:mnist1d_ops --archs 64 --seeds 0 1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import time
from dataclasses import asdict, replace
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from nasforge.data import load_dataset  # noqa: E402
from nasforge.data.datasets import SourceOptions  # noqa: E402
from nasforge.evaluate.oneshot import PathSampler, PathScorer, ScoringOptions, SupernetOptions, train_supernet  # noqa: E402
from nasforge.evaluate.oneshot.scoring import spearman_kendall  # noqa: E402
from nasforge.evaluate.trainer import TrainingOptions, score, train  # noqa: E402
from nasforge.space import CellSpace, SearchSpace  # noqa: E402
from nasforge.space.function import FunctionSpace  # noqa: E402
from nasforge.space.resolve import load_space_object  # noqa: E402

# name -> (supernet options changed from the base, scoring options changed from the base)
SETTINGS = {
    "uniform": ({}, {}),  # SPOS: one uniform path per step, batch norm recalibrated on 4 batches
    "fair": ({"sampling": "fair"}, {}),  # FairNAS: all 5 ops of every edge per step; 5x the compute per epoch
    "fair-equal": ({"sampling": "fair", "epochs": "/5"}, {}),  # fair at the uniform setting's forward/backward passes
    "bn-batch": ({}, {"bn": "batch"}),  # no recalibration: each validation batch normalised by its own statistics
    "bn-stale": ({}, {"bn": "stale"}),  # the running statistics training left
    "bn-1": ({}, {"bn_batches": 1}),
    "bn-16": ({}, {"bn_batches": 16}),
    "lr-1e-3": ({"lr": 1e-3}, {}),
    "lr-1e-2": ({"lr": 1e-2}, {}),
    "short": ({"epochs": "/2"}, {}),
    "long": ({"epochs": "*2"}, {}),
    "x4": ({"epochs": "*4"}, {}),
    "x4-bn-batch": ({"epochs": "*4"}, {"bn": "batch"}),
    "long-fair-equal": ({"sampling": "fair", "epochs": "*2/5"}, {}),
    "lr-3e-2": ({"lr": 3e-2}, {}),
    "long-lr-1e-2": ({"epochs": "*2", "lr": 1e-2}, {}),
    "no-wd": ({"weight_decay": 0.0}, {}),
}


def cpu() -> float:
    return time.process_time()


def arch(space: SearchSpace, genome) -> str:
    """An architecture as a cache key: the cell's string, or a genome's canonical JSON."""
    data = space.to_json(genome)
    return data if isinstance(data, str) else json.dumps(data, sort_keys=True)


def which(args: argparse.Namespace) -> str:
    """The dataset and space a cache entry belongs to (the cell space keeps its earlier keys)."""
    return f"{args.dataset}|{args.layout}" + (f"|{args.space}" if args.space else "")


def load(args: argparse.Namespace):
    if args.dataset.startswith("fsdd:"):
        options = SourceOptions("speaker", "theo", band_norm="mean")
        return load_dataset(args.dataset, val_fraction=0.1, layout=args.layout, options=options)
    return load_dataset(args.dataset)


def standalone(space: SearchSpace, data, genomes: list, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """arch string -> {seed: validation accuracy}, trained stand-alone (cached)."""
    cache = Path(args.cache)
    table: dict[str, dict[str, float]] = json.loads(cache.read_text()) if cache.exists() else {}
    meta = f"{which(args)}|{args.standalone_epochs}|{args.lr}|{args.batch_size}"
    table = table if table.get("__meta__") == {"key": meta} else {"__meta__": {"key": meta}}
    options = TrainingOptions(epochs=args.standalone_epochs, batch_size=args.batch_size, lr=args.lr,
                              label_smoothing=args.label_smoothing)
    spent = 0.0
    for i, genome in enumerate(genomes):
        key = arch(space, genome)
        for seed in args.seeds:
            if str(seed) in table.get(key, {}):
                continue
            start = cpu()
            torch.manual_seed(seed)
            model = space.build(genome)
            train(model, data.x_train, data.y_train, options, seed, augment=data.augment)
            acc = score(model, data.x_val, data.y_val, data.num_classes)["accuracy"]
            spent += cpu() - start
            table.setdefault(key, {})[str(seed)] = acc
            cache.write_text(json.dumps(table))
            print(f"  stand-alone {i + 1}/{len(genomes)} seed {seed}: {acc:.4f}  {space.describe(genome)}  "
                  f"({cpu() - start:.0f} CPU-s)", flush=True)
    if spent:
        print(f"stand-alone training: {spent:.0f} CPU-s this run", flush=True)
    return table


def taus(truth: np.ndarray, est: np.ndarray) -> tuple[float, float, float, float]:
    rho, tau = spearman_kendall(truth, est)
    top = truth >= np.median(truth)
    rho_top, tau_top = spearman_kendall(truth[top], est[top])
    return tau, rho, tau_top, rho_top


def resolve(options: SupernetOptions, changes: dict) -> SupernetOptions:
    out = {}
    for key, value in changes.items():
        if isinstance(value, str) and value[0] in "/*":  # "*2", "/5", "*2/5": scaled from the base setting
            scaled = getattr(options, key)
            for op, number in re.findall(r"([*/])(\d+)", value):
                scaled = scaled * int(number) if op == "*" else max(1, scaled // int(number))
            value = scaled
        out[key] = value
    return replace(options, **out)


def trained_supernet(space: SearchSpace, data, options: SupernetOptions, seed: int, args: argparse.Namespace,
                     memo: dict) -> tuple[torch.nn.Module, float]:
    """A supernet trained with `options` and its training CPU seconds; kept in --supernet-dir, so
    a later run rescores it (another scoring option, another measure) without training it again."""
    if (options, seed) in memo:
        return memo[(options, seed)]
    where = (args.dataset, args.layout) + ((args.space,) if args.space else ())
    key = hashlib.sha1(repr((*where, asdict(options), seed)).encode()).hexdigest()[:16]
    path = Path(args.supernet_dir) / f"{key}.pt"
    torch.manual_seed(seed)
    net = space.supernet()
    if path.exists():
        saved = torch.load(path, weights_only=True)
        net.load_state_dict(saved["model"])
        seconds = float(saved["train_cpu"])
    else:
        start = cpu()
        train_supernet(net, PathSampler(space, options.sampling), data.x_train, data.y_train, options, seed, augment=data.augment)
        seconds = cpu() - start
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"model": net.state_dict(), "train_cpu": seconds}, path)
    memo[(options, seed)] = (net, seconds)
    return net, seconds


def supernet_scores(space: SearchSpace, data, genomes: list, args: argparse.Namespace) -> dict:
    """(setting, seed) -> {"accuracy" / "neg_loss": arch -> the path's validation score with the shared weights,
    "train_cpu", "ms_per_query", "what"}, computed for what --scores-cache lacks."""
    cache = Path(args.scores_cache)
    table = json.loads(cache.read_text()) if cache.exists() else {}
    base = SupernetOptions(epochs=args.supernet_epochs, batch_size=args.batch_size, lr=args.lr,
                           label_smoothing=args.label_smoothing)
    out, memo = {}, {}
    for name in args.settings:
        net_changes, score_changes = SETTINGS[name]
        options = resolve(base, net_changes)
        scoring = replace(ScoringOptions(batch_size=args.batch_size), **score_changes)
        what = (f"{options.sampling}, {options.epochs} epochs, lr {options.lr:g}, wd {options.weight_decay:g}, bn {scoring.bn}"
                f"{f' x{scoring.bn_batches}' if scoring.bn == 'recalibrate' else ''}")
        for seed in args.supernet_seeds:
            key = f"{which(args)}|{name}|{seed}|{what}"
            entry = table.get(key, {})
            if any(arch(space, g) not in entry.get("neg_loss", {}) for g in genomes):
                net, entry["train_cpu"] = trained_supernet(space, data, options, seed, args, memo)
                scorer = PathScorer(net, data.x_train, data.x_val, data.y_val, data.num_classes, scoring, seed)
                entry["accuracy"], entry["neg_loss"] = {}, {}
                start = cpu()
                for g in genomes:
                    metrics = scorer.score(g)
                    entry["accuracy"][arch(space, g)] = metrics["accuracy"]
                    entry["neg_loss"][arch(space, g)] = -metrics["loss"]
                entry["ms_per_query"] = (cpu() - start) / len(genomes) * 1000
                entry["what"] = what
                table[key] = entry
                cache.write_text(json.dumps(table))
                print(f"  scored {name} seed {seed}: supernet {entry['train_cpu']:.0f} CPU-s, "
                      f"{entry['ms_per_query']:.0f} CPU-ms per query ({what})", flush=True)
            out[(name, seed)] = entry
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist1d", help="mnist1d or fsdd:PATH (held-out speaker theo, validated on yweweler)")
    parser.add_argument("--layout", default="nhw", help="fsdd: nhw (2-D) or ncl (1-D)")
    parser.add_argument("--space", default=None, metavar="FILE.py:NAME", help="a model function whose decisions are all "
                        "c.module (default: the NB201 cell space)")
    parser.add_argument("--archs", type=int, default=64)
    parser.add_argument("--arch-seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="stand-alone training seeds (two give the ceiling)")
    parser.add_argument("--standalone-epochs", type=int, default=20)
    parser.add_argument("--supernet-epochs", type=int, default=50)
    parser.add_argument("--supernet-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--label-smoothing", type=float, default=0.0)
    parser.add_argument("--settings", nargs="+", default=["uniform", "fair-equal", "bn-batch", "bn-stale"], choices=sorted(SETTINGS))
    parser.add_argument("--cache", default="supernet_ranking_standalone.json")
    parser.add_argument("--scores-cache", default="supernet_ranking_scores.json")
    parser.add_argument("--supernet-dir", default="supernet_ranking_nets", help="trained supernets, kept for rescoring")
    parser.add_argument("--standalone-only", action="store_true")
    parser.add_argument("--scores-only", action="store_true", help="train the supernets and cache their scores only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"load {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} at start", flush=True)
    data = load(args)
    space: SearchSpace = FunctionSpace(load_space_object(args.space)) if args.space else CellSpace(data.input_shape, data.num_classes)
    rng = np.random.default_rng(args.arch_seed)
    genomes = []
    while len(genomes) < args.archs:  # distinct architectures
        g = space.sample(rng)
        if g not in genomes:
            genomes.append(g)
    print(f"{args.dataset}: {len(data.y_train)} train / {len(data.y_val)} val rows, input {list(data.input_shape)}; "
          f"{len(genomes)} {'architectures of ' + args.space if args.space else 'cells'} drawn uniformly "
          f"(seed {args.arch_seed}); stand-alone {args.standalone_epochs} epochs", flush=True)
    if args.scores_only:
        supernet_scores(space, data, genomes, args)
        return
    table = standalone(space, data, genomes, args)
    truth = np.array([np.mean([table[arch(space, g)][str(s)] for s in args.seeds]) for g in genomes])
    print(f"stand-alone validation accuracy: mean {truth.mean():.4f}, min {truth.min():.4f}, max {truth.max():.4f}")
    if len(args.seeds) >= 2:
        a = np.array([table[arch(space, g)][str(args.seeds[0])] for g in genomes])
        b = np.array([table[arch(space, g)][str(args.seeds[1])] for g in genomes])
        tau, rho, tau_top, rho_top = taus(a, b)
        print(f"ceiling (stand-alone seed {args.seeds[0]} vs seed {args.seeds[1]}): tau {tau:.3f} rho {rho:.3f}; "
              f"better half tau {tau_top:.3f} rho {rho_top:.3f}", flush=True)
    if args.standalone_only:
        return
    scores = supernet_scores(space, data, genomes, args)
    print("tau / rho: Kendall / Spearman over all architectures; ½: over the better half (by stand-alone accuracy); "
          "acc: ranked by the supernet's validation accuracy, loss: by its validation loss")
    print(f"{'setting':<11} {'seed':>4} {'tau acc':>7} {'rho acc':>7} {'tau½ acc':>8} {'tau loss':>8} {'tau½ loss':>9} "
          f"{'train CPU-s':>11} {'ms/query':>8}", flush=True)
    summary = {}
    for name in args.settings:
        rows = []
        for seed in args.supernet_seeds:
            entry = scores[(name, seed)]
            acc = taus(truth, np.array([entry["accuracy"][arch(space, g)] for g in genomes]))
            loss = taus(truth, np.array([entry["neg_loss"][arch(space, g)] for g in genomes]))
            row = (acc[0], acc[1], acc[2], loss[0], loss[2])
            rows.append(row)
            print(f"{name:<11} {seed:>4} {row[0]:7.3f} {row[1]:7.3f} {row[2]:8.3f} {row[3]:8.3f} {row[4]:9.3f} "
                  f"{entry['train_cpu']:11.0f} {entry['ms_per_query']:8.0f}   ({entry['what']})", flush=True)
        summary[name] = np.array(rows)
    print("\nmean (std) over supernet seeds " + " ".join(map(str, args.supernet_seeds)) + ":")
    for name, rows in summary.items():
        m, s = rows.mean(0), rows.std(0)
        print(f"  {name:<11} tau acc {m[0]:.3f} ({s[0]:.3f})  rho acc {m[1]:.3f}  better half tau acc {m[2]:.3f}  "
              f"tau loss {m[3]:.3f} ({s[3]:.3f})  better half tau loss {m[4]:.3f}")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"process CPU {usage.ru_utime + usage.ru_stime:.0f} s; load {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
