"""Does the latency timer that can synchronise a GPU (evaluate/cost.py: forward_times) agree on the
CPU with the timer it replaced (the median of perf_counter around each forward pass, no
synchronisation), and with torch.utils.benchmark.Timer?

For several networks (layers-space candidates of digits and MNIST-1D shapes, and a CIFAR-sized
ResNet-ish net) and two batch sizes, each timer measures latency_ms as a search does (3 warm-up
passes, the median of 10 timed ones) in `--rounds` alternating rounds; the script prints the median
over rounds with its spread (the interquartile range of the rounds), the new/old ratio, and whether
the difference lies within the spread. torch's Timer (blocked_autorange, 0.2 s a round) is a
third opinion.

    python benchmarks/performance/latency_timer.py                 # about a minute on 2 cores
    python benchmarks/performance/latency_timer.py --rounds 15 --batches 1

CPU timings on a shared machine are noisy: the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn
from torch.utils.benchmark import Timer

from nasforge.evaluate.cost import _inference, measure_latency_ms
from nasforge.space import LayerGraphSpace, LayerSpaceOptions

sys.path.insert(0, os.path.dirname(__file__))
from gpu_throughput import resnetish  # noqa: E402


def old_latency_ms(model: nn.Module, example: torch.Tensor, warmup: int = 3, repeats: int = 10) -> float:
    """The timer before this change (evaluate/cost.py at main 218139f), verbatim."""
    with _inference(model):
        for _ in range(warmup):
            model(example)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(example)
            times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def torch_timer_ms(model: nn.Module, example: torch.Tensor) -> float:
    with _inference(model):
        timer = Timer("model(x)", globals={"model": model, "x": example}, num_threads=torch.get_num_threads())
        return 1000.0 * timer.blocked_autorange(min_run_time=0.2).median


def networks(count: int) -> list[tuple[str, nn.Module, tuple[int, ...]]]:
    nets = []
    rng = np.random.default_rng(0)
    for shape, label in (((1, 8, 8), "digits"), ((1, 40), "mnist1d")):
        space = LayerGraphSpace(shape, 10, LayerSpaceOptions(min_blocks=2, max_blocks=5))
        for i in range(count):
            torch.manual_seed(i)
            model = space.build(space.sample(rng))
            nets.append((f"{label} #{i + 1} ({sum(p.numel() for p in model.parameters()):,} params)", model, shape))
    nets.append(("ResNet-ish 3x32x32 (w16)", resnetish(16, 1), (3, 32, 32)))
    return nets


def iqr(values: list[float]) -> float:
    q = np.percentile(values, [25, 75])
    return float(q[1] - q[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--per-space", type=int, default=3, help="layers-space candidates per input shape")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--no-torch-timer", action="store_true", help="skip torch's Timer (0.2 s per measurement)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread; {args.rounds} rounds, warmup 3, median of 10; "
          f"load {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f}")
    print(f"{'network':<34} {'batch':>5} {'old ms (IQR)':>17} {'new ms (IQR)':>17} {'new/old (range)':>20} {'within':>7}"
          f"{'' if args.no_torch_timer else '  torch Timer ms':>17}")
    agree = total = 0
    for name, model, shape in networks(args.per_space):
        for batch in args.batches:
            example = torch.randn(batch, *shape)
            old, new, ref = [], [], []
            for r in range(args.rounds):
                pair = ((old, old_latency_ms), (new, measure_latency_ms))
                for values, timer in (pair if r % 2 == 0 else pair[::-1]):
                    values.append(timer(model, example))
                if not args.no_torch_timer and r < 3:
                    ref.append(torch_timer_ms(model, example))
            ratios = [n / o for n, o in zip(new, old)]
            m_old, m_new = statistics.median(old), statistics.median(new)
            within = abs(m_new - m_old) <= max(iqr(old), iqr(new))
            agree += within
            total += 1
            print(f"{name:<34} {batch:>5} {m_old:>8.3f} ({iqr(old):.3f}) {m_new:>8.3f} ({iqr(new):.3f}) "
                  f"{statistics.median(ratios):>8.3f} ({min(ratios):.2f}-{max(ratios):.2f}) {'yes' if within else 'no':>7}"
                  f"{'' if not ref else f'{statistics.median(ref):>17.3f}'}", flush=True)
    print(f"\nthe medians differ by less than the rounds' spread in {agree} of {total} cases; load {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
