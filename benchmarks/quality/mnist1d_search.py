"""MNIST-1D: evolution vs random search at equal trial budget, plus trainer throughput.

Prints, per strategy over the seeds: mean best validation accuracy, test accuracy of the returned
model (the best genome retrained for --final-epochs), CPU minutes of the whole search; then the
trainer's samples/s against a minimal hand-written PyTorch loop on the same network and data.

    python benchmarks/quality/mnist1d_search.py                       # 3 seeds x {evolution, random}
    python benchmarks/quality/mnist1d_search.py --seeds 0 --trials 20  # quicker look
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

import nasforge
from nasforge.data import load_dataset
from nasforge.evaluate import TrainingOptions, train
from nasforge.space import Layer, LayerGenome, LayerGraphSpace


def run_search(strategy: str, seed: int, args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    out = Path(args.out) / f"{strategy}-{seed}"
    shutil.rmtree(out, ignore_errors=True)
    cpu, wall = time.process_time(), time.perf_counter()
    study = nasforge.search(dataset="mnist1d", strategy=strategy, trials=args.trials, epochs=args.epochs,
                            final_epochs=args.final_epochs, seed=seed, out=str(out), progress=False,
                            inherit=args.inherit)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    best = study.best
    row = {"strategy": strategy, "seed": seed, "best_val": best.reward, "test": study.final["test"]["accuracy"],
           "cpu_min": cpu / 60, "wall_min": wall / 60, "params": best.params, "failed": sum(t.status == "failed" for t in study.trials),
           "arch": study.space.describe(study.space.from_json(best.genome))}
    print(f"  {strategy:<9} seed {seed}: best val {row['best_val']:.4f}  test {row['test']:.4f}  "
          f"cpu {row['cpu_min']:.1f} min  params {row['params']}  failed {row['failed']}  | {row['arch']}", flush=True)
    return row


def reference_genome() -> LayerGenome:
    """A residual CNN with batch norm, as a human would write it."""
    layers = [Layer.of("conv", kernel=5, channels=64, stride=1), Layer.of("norm"), Layer.of("act", fn="relu")]
    for block in range(3):
        layers += [Layer.of("conv", kernel=3, channels=64, stride=1), Layer.of("norm"), Layer.of("act", fn="relu"),
                   Layer.of("conv", kernel=3, channels=64, stride=1), Layer.of("norm"), Layer.of("skip", span=6),
                   Layer.of("act", fn="relu")]
        if block < 2:
            layers.append(Layer.of("pool", op="max", size=2))
    return LayerGenome(tuple(layers))


def throughput(epochs: int, repeats: int = 3) -> tuple[float, float]:
    """Samples/s of nasforge's trainer and of a minimal loop, same network, data, optimiser, batch size.
    The two alternate `repeats` times and the best of each counts, so load from other processes
    hits both alike."""
    data = load_dataset("mnist1d")
    space = LayerGraphSpace(data.input_shape, data.num_classes)
    options = TrainingOptions(epochs=epochs, batch_size=128, cosine=False)
    x, y = data.x_train, data.y_train

    def ours() -> float:
        torch.manual_seed(0)
        model = space.build(reference_genome())
        start = time.perf_counter()
        train(model, x, y, options, seed=0)
        return epochs * len(x) / (time.perf_counter() - start)

    def plain() -> float:
        torch.manual_seed(0)
        model = space.build(reference_genome())
        opt = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
        start = time.perf_counter()
        for _ in range(epochs):
            model.train()
            perm = torch.randperm(len(x))
            for i in range(0, len(x), 128):
                idx = perm[i : i + 128]
                loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        return epochs * len(x) / (time.perf_counter() - start)

    runs = [(ours(), plain()) for _ in range(repeats)]
    return max(r[0] for r in runs), max(r[1] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--strategies", nargs="+", default=["evolution", "random"])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--final-epochs", type=int, default=60)
    parser.add_argument("--inherit", action=argparse.BooleanOptionalAction, default=False,
                        help="weight inheritance (nasforge's default for classifiers; off here, as in the README's table)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (CPU minutes are process CPU time)")
    parser.add_argument("--throughput-epochs", type=int, default=5)
    parser.add_argument("--out", default="runs/bench-mnist1d")
    parser.add_argument("--jobs", type=int, default=1, help="searches run side by side (each in its own process)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(f"MNIST-1D search: {args.trials} trials x {args.epochs} epochs, best retrained {args.final_epochs} epochs, "
          f"seeds {args.seeds}, {args.threads} thread(s)", flush=True)
    runs = [(s, seed) for s in args.strategies for seed in args.seeds]
    if args.jobs > 1:
        # CPU minutes are each search's own process CPU time, so side-by-side runs do not inflate them.
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            rows = list(pool.map(run_search, *zip(*runs), [args] * len(runs)))
    else:
        rows = [run_search(s, seed, args) for s, seed in runs]

    print(f"\n{'strategy':<10} {'runs':>4} {'best val acc':>16} {'test acc (returned)':>22} {'cpu min':>14} {'worst test':>10}")
    for s in args.strategies:
        r = [row for row in rows if row["strategy"] == s]

        def ms(key: str, r: list = r) -> str:
            values = [row[key] for row in r]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            return f"{statistics.mean(values):.4f} ± {sd:.4f}" if key != "cpu_min" else f"{statistics.mean(values):.1f} ± {sd:.1f}"

        print(f"{s:<10} {len(r):>4} {ms('best_val'):>16} {ms('test'):>22} {ms('cpu_min'):>14} {min(x['test'] for x in r):>10.4f}")

    ours, plain = throughput(args.throughput_epochs)
    print(f"\ntrainer throughput (residual CNN, 76k params, batch 128, {args.threads} thread(s)): "
          f"nasforge {ours:,.0f} samples/s, minimal loop {plain:,.0f} samples/s, ratio {ours / plain:.2f}x")


if __name__ == "__main__":
    main()
