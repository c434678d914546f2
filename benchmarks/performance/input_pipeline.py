"""The CPU speed of the in-memory input path, to compare two checkouts (before / after a change).

Runs only APIs that predate the accelerator work (Dataset.batches, train_batches, TrainingOptions),
so the same script measures any checkout: put its src first on PYTHONPATH.

1. Iterating shuffled batches of digits' training split (what every epoch does besides the network).
2. Training a one-block network (where the data path weighs most) and a small convolution net for
   a few epochs, with validation scoring each epoch, as a trial does.

Samples per CPU-second of this process, mean ± standard deviation over `--repeats` (after one
untimed warm-up); the load average is printed beside them.

    PYTHONPATH=/work/main/src python benchmarks/performance/input_pipeline.py     # before
    PYTHONPATH=src python benchmarks/performance/input_pipeline.py                # after
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
from torch import nn

import nasforge
from nasforge.data import load_dataset
from nasforge.evaluate.tasks import Task
from nasforge.evaluate.trainer import TrainingOptions, train_batches


def iterate(data, epochs: int, batch_size: int) -> float:
    batches = data.batches("train", batch_size, "cpu", seed=0)
    start, n = time.process_time(), 0
    for _ in range(epochs):
        for x, _y in batches.epoch():
            n += len(x)
    return n / (time.process_time() - start)


def tiny() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


def small_conv() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


def train(data, make, epochs: int, batch_size: int) -> float:
    torch.manual_seed(0)
    model = make()
    options = TrainingOptions(epochs=epochs, batch_size=batch_size)
    train_set, val = data.batches("train", batch_size, "cpu", seed=0), data.batches("val", 1024, "cpu")
    start = time.process_time()
    outcome = train_batches(model, train_set, options, 0, Task("classification", 10), validation=val)
    return outcome.samples / (time.process_time() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = load_dataset("digits")
    print(f"nasforge from {os.path.dirname(nasforge.__file__)}; torch {torch.__version__}, 1 thread; digits "
          f"{len(data.y_train)} training samples, batch {args.batch_size}; load {os.getloadavg()[0]:.1f}")
    cases = {
        "iterate batches only": lambda: iterate(data, 20 * args.epochs, args.batch_size),
        "train one-block net (+val)": lambda: train(data, tiny, args.epochs, args.batch_size),
        "train small conv net (+val)": lambda: train(data, small_conv, args.epochs, args.batch_size),
    }
    for fn in cases.values():
        fn()  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, fn in cases.items():
            rates[name].append(fn())
    for name, values in rates.items():
        print(f"{name:<30} {statistics.mean(values):>10.0f} ± {statistics.stdev(values):<7.0f} samples per CPU-second")
    print(f"load {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
