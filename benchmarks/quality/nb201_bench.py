"""NAS-Bench-201 search benchmark: every strategy x 200 seeds on CIFAR-10 and CIFAR-100, printed
beside the published numbers (the same as `nasforge bench`, once per dataset).

    python benchmarks/quality/nb201_bench.py [--table ../shared/data/nb201/nb201.csv] [--runs 200] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from nasforge.cli import main

# Where the JSON results (and their best-so-far PNGs) are kept, beside the other benchmarks' results.
RESULTS = Path(__file__).resolve().parents[1] / "results"
DATASETS = {
    "cifar10": ("c10_valid_12ep", "c10_test_200ep_mean"),
    "cifar100": ("c100_valid_12ep", "c100_test_200ep_mean"),
}

if __name__ == "__main__":
    torch.set_num_threads(1)  # the harness is a sequential loop; extra threads only contend
    default_table = Path(os.environ.get("NASFORGE_DATA", Path(__file__).resolve().parents[3] / "shared/data")) / "nb201/nb201.csv"
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", default=str(default_table))
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strategies", default=None, help="comma-separated; default: all of nasforge bench's defaults")
    parser.add_argument("--datasets", default="cifar10,cifar100")
    parser.add_argument("--out", default=str(RESULTS), help="folder for nb201_<dataset>.json and .png (default benchmarks/results)")
    args = parser.parse_args()
    for name in args.datasets.split(","):
        signal, report = DATASETS[name]
        argv = ["bench", "--table", args.table, "--signal", signal, "--report", report, "--runs", str(args.runs),
                "--seed", str(args.seed), "--json", str(Path(args.out) / f"nb201_{name}.json")]
        if args.strategies:
            argv += ["--strategies", args.strategies]
        print(f"== NAS-Bench-201 {name} ==", flush=True)
        code = main(argv)
        if code:
            raise SystemExit(code)
