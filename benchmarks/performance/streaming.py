"""Memory and speed of the streamed data path against the in-memory one.

1. Peak memory of a search over an image folder of large JPEGs (default 2,000 pictures of
   1024 x 1024, written once into /tmp, never the repository): each configuration runs in a fresh
   process that reports its peak RSS (ru_maxrss of itself and, separately, of its largest DataLoader
   worker). Streamed, memory should grow with the batch size, not with the number of pictures; the
   in-memory path (all pictures decoded at 32 x 32 into one array) is measured beside it.
2. Training throughput on data that fits in memory (the same pictures at 32 x 32): one fixed network
   trained for a few epochs from tensors (index slices, the default for small data) and from the
   streamed path (a DataLoader over the items: already-decoded tensors, and JPEG decoding per item),
   as samples per CPU-second (this process and its DataLoader workers), mean and spread over repeats.

    python benchmarks/performance/streaming.py                      # everything (several minutes on 2 cores)
    python benchmarks/performance/streaming.py --counts 200 800 --side 512 --repeats 2

CPU time, not wall time: the machine is shared; the load average is printed beside the figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path("/tmp/nasforge-bench-jpegs")


def make_folder(root: Path, pictures: int, side: int) -> Path:
    """`pictures` JPEGs of side x side: scikit-learn's digits, upscaled and tinted by class (10 classes)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    folder = root / f"{pictures}x{side}"
    if folder.exists() and sum(1 for _ in folder.rglob("*.jpg")) == pictures:
        return folder
    d = load_digits()
    rng = np.random.default_rng(0)
    for i in range(pictures):
        label = int(d.target[i % len(d.target)])
        grey = Image.fromarray((d.images[i % len(d.target)] * 255 / 16).astype(np.uint8), "L").resize((side, side),
                                                                                                        Image.Resampling.BILINEAR)
        tint = Image.new("L", (side, side), int(rng.integers(0, 120)))
        picture = Image.merge("RGB", (grey, tint, Image.new("L", (side, side), 25 * label)))
        (folder / f"digit_{label}").mkdir(parents=True, exist_ok=True)
        picture.save(folder / f"digit_{label}" / f"{i:05d}.jpg", quality=90)
    return folder


def peak_rss_mb() -> tuple[float, float]:
    """(this process, its largest waited-for child) peak resident memory in MB (Linux: ru_maxrss in kB)."""
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def current_rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def child_search(folder: str, mode: str, batch: int, workers: int, out: str) -> None:
    """One search in this (fresh) process; prints its peak RSS as JSON."""
    import sklearn.metrics  # noqa: F401 - imported by every search; part of the baseline, not of the data
    import torch  # noqa: F401

    import nasforge

    baseline = current_rss_mb()
    start = time.process_time()
    study = nasforge.search(dataset=folder, stream=mode == "streamed", image_size=32, batch_size=batch, data_workers=workers,
                            trials=2, epochs=1, max_blocks=3, channels=(8, 16), strategy="random", out=out, progress=False)
    own, child = peak_rss_mb()
    print(json.dumps({"mode": mode, "batch": batch, "workers": workers, "peak_mb": round(own, 1), "worker_peak_mb": round(child, 1),
                      "baseline_mb": round(baseline, 1),
                      "cpu_s": round(time.process_time() - start, 1), "trials": len(study.trials),
                      "test_accuracy": study.final["test"]["accuracy"]}))


def memory(args: argparse.Namespace) -> None:
    print(f"== peak RSS of a search over JPEGs of {args.side}x{args.side} (image_size 32, 2 trials x 1 epoch) ==")
    configs = [(n, "streamed", b, 0) for n in args.counts for b in args.batches]
    configs += [(max(args.counts), "streamed", args.batches[-1], 2)]
    configs += [(n, "memory", args.batches[0], 0) for n in args.counts]
    print("peak: the search process's peak RSS; imports: its RSS after importing torch, scikit-learn and nasforge, before "
          "any data; worker: the largest DataLoader worker's peak")
    print(f"{'pictures':>8} {'path':>9} {'batch':>6} {'workers':>7} {'peak MB':>8} {'imports MB':>10} {'peak-imports':>12} "
          f"{'worker MB':>9} {'CPU s':>6}  load")
    for n, mode, batch, workers in configs:
        folder = make_folder(ROOT, n, args.side)
        out = f"/tmp/nasforge-bench-run-{os.getpid()}-{n}-{mode}-{batch}-{workers}"
        proc = subprocess.run([sys.executable, __file__, "--child", str(folder), mode, str(batch), str(workers), out],
                              capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        subprocess.run(["rm", "-rf", out])
        if proc.returncode:
            print(proc.stderr[-3000:])
            raise SystemExit(proc.returncode)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{n:>8} {mode:>9} {batch:>6} {workers:>7} {r['peak_mb']:>8.0f} {r['baseline_mb']:>10.0f} "
              f"{r['peak_mb'] - r['baseline_mb']:>12.0f} {r['worker_peak_mb']:>9.0f} {r['cpu_s']:>6.1f}  {os.getloadavg()[0]:.1f}")


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def throughput(args: argparse.Namespace) -> None:
    import torch

    from nasforge.data.batches import LoaderBatches
    from nasforge.data.datasets import SourceOptions, load_dataset
    from nasforge.data.images import ImageFolder
    from nasforge.evaluate.tasks import Task
    from nasforge.evaluate.trainer import TrainingOptions, train_batches
    from nasforge.space import LayerGraphSpace, LayerSpaceOptions

    torch.set_num_threads(1)
    folder = make_folder(ROOT, min(args.counts), args.side)
    memory_data = load_dataset(str(folder), options=SourceOptions(image_size=32, stream=False))
    streamed = load_dataset(str(folder), options=SourceOptions(image_size=32, stream=True))
    options_ = LayerSpaceOptions(channels=(8,), kernels=(3,), min_blocks=1, max_blocks=1) if args.tiny else \
        LayerSpaceOptions(channels=(8, 16))
    space = LayerGraphSpace(memory_data.input_shape, memory_data.num_classes, options_)
    genome = space.sample(np.random.default_rng(3))
    options = TrainingOptions(epochs=args.epochs, batch_size=64)
    task = Task.of(memory_data)
    decoded = torch.utils.data.TensorDataset(memory_data.x_train, memory_data.y_train)
    paths = {
        "in-memory tensors (index slices)": lambda: memory_data.batches("train", 64, "cpu", seed=0),
        "streamed, decoded items, 0 workers": lambda: LoaderBatches(decoded, 64, "cpu", seed=0),
        "streamed, JPEG per item, 0 workers": lambda: streamed.batches("train", 64, "cpu", seed=0),
        "streamed, JPEG per item, 2 workers": lambda: LoaderBatches(streamed.train, 64, "cpu", seed=0, workers=2,
                                                                     mean=streamed.mean, std=streamed.std),
    }
    assert isinstance(streamed.train.source, ImageFolder)
    print(f"\n== training throughput, {len(memory_data.y_train)} training pictures at 32x32, {args.epochs} epochs of "
          f"{space.describe(genome)} ==")
    print(f"{'path':<36} {'samples / CPU-s':>16} {'spread':>8}  load")
    for name, make in paths.items():
        rates = []
        for repeat in range(args.repeats + 1):  # the first run warms up (allocator, imports) and is not counted
            torch.manual_seed(0)
            model = space.build(genome)
            batches = make()
            before = cpu_seconds()
            outcome = train_batches(model, batches, options, 0, task)
            batches.close()
            del batches
            gc.collect()  # persistent DataLoader workers exit here, so their CPU time is counted
            time.sleep(0.2)
            if repeat:
                rates.append(outcome.samples / (cpu_seconds() - before))
        print(f"{name:<36} {np.mean(rates):>16.0f} {np.std(rates):>8.0f}  {os.getloadavg()[0]:.1f}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        folder, mode, batch, workers, out = sys.argv[2:7]
        child_search(folder, mode, int(batch), int(workers), out)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[500, 2000], help="pictures in the folders compared")
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 128], help="batch sizes compared")
    parser.add_argument("--side", type=int, default=1024, help="side of every JPEG in pixels")
    parser.add_argument("--epochs", type=int, default=2, help="throughput: epochs per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="throughput: measurements per path")
    parser.add_argument("--tiny", action="store_true", help="throughput: a one-block network, where the data path matters most")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}; cores: {len(os.sched_getaffinity(0))}")
    if not args.skip_memory:
        memory(args)
    if not args.skip_throughput:
        throughput(args)


if __name__ == "__main__":
    main()
