"""Defaults that fit the data: searches with nasforge's defaults before and after the automatic batch
size and the layers space's compute cap (space.max_flops), on two small image sets.

1. scikit-learn's digits (1,078 training rows), 8 trials x 3 epochs: before = batch 128 (27 optimizer
   steps per candidate) and no compute cap, after = the defaults (batch auto: 32).
2. 5,000 28x28 grayscale digit images, 10 trials x 5 epochs: before = batch 128, no cap and no early
   downsampling (the old defaults; run under a wall-clock budget, since it does not end in reasonable time), after = the
   defaults; beside a plain 3-conv CNN (conv32-pool-conv64-pool-conv64, ReLU, batch norm) trained
   as long (5 epochs, same optimizer and batch).

The 28x28 set is made here, locally, from scikit-learn's 1,797 digit scans (real handwriting, 8x8):
each scan upscaled to 28x28 (bilinear) and drawn again with small random shifts, rotations and scales
(seeded) until there are 5,000; the scans are split 60/20/20 first, so every copy of a scan lies in
one split only. No download is involved (there is no MNIST on this machine).

CPU seconds are the search process's own (resource.getrusage of the child; serial executor, so no
grandchildren), with the load average printed before and after.

    python benchmarks/quality/defaults_fit.py [--skip-before] [--before-seconds 600] [--seeds 0]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

# The old defaults: no compute cap, no early downsampling (with --batch-size 128).
OLD = {"space": {"max_flops": None, "stem": False}}


def make_digits28(path: Path, total: int = 5000, seed: int = 0) -> Path:
    from sklearn.datasets import load_digits
    from torch.nn import functional as F

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0
    x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
    y = d.target
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    n_train, n_val = int(0.6 * len(y)), int(0.2 * len(y))
    parts = {"": order[:n_train], "_val": order[n_train : n_train + n_val], "_test": order[n_train + n_val :]}
    gen = torch.Generator().manual_seed(seed)
    arrays = {}
    for suffix, idx in parts.items():
        want = round(total * len(idx) / len(y))
        src = np.resize(idx, want)  # every scan once, then again, ... up to `want` images
        base = x[src]
        angle = (torch.rand(want, generator=gen) - 0.5) * (2 * np.pi / 18)  # +-10 degrees
        scale = 1 + (torch.rand(want, generator=gen) - 0.5) * 0.2
        shift = (torch.rand(want, 2, generator=gen) - 0.5) * (4 / 14)  # +-2 pixels
        first = np.zeros(want, dtype=bool)
        first[: len(idx)] = True  # the first copy of each scan is the scan itself
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        theta[torch.from_numpy(first)] = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
        grid = F.affine_grid(theta, list(base.shape), align_corners=False)
        images = F.grid_sample(base, grid, align_corners=False, padding_mode="zeros")[:, 0]
        arrays["x" + suffix] = (images.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        arrays["y" + suffix] = y[src]
    np.savez_compressed(path, **arrays)
    return path


def run_search(args: list[str], out: Path, config: dict | None = None) -> dict:
    """A search in a child process; its CPU seconds and the study's figures."""
    cfg = out.parent / f"{out.name}.yaml"
    cmd = [sys.executable, "-m", "nasforge.cli", "search"]
    if config is not None:
        import yaml

        cfg.write_text(yaml.safe_dump(config))
        cmd.append(str(cfg))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([*cmd, *args, "--out", str(out), "--progress", "false"], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"search failed: {done.stderr[-2000:]}")
    from nasforge.report.snapshot import read_run

    snap = read_run(out)
    final = snap.final or {}
    return {"cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), "wall": wall,
            "trials": len(snap.trials), "complete": len(snap.complete), "batch": snap.config["training"]["batch_size"],
            "test": (final.get("test") or {}).get("accuracy"), "stop": done.stdout.splitlines()[0] if done.stdout else "",
            "best": (snap.best.genome if snap.best else None)}


def plain_cnn(data_path: Path, epochs: int, batch: int, seed: int) -> tuple[float, float]:
    """Test accuracy and CPU seconds of a plain 3-conv CNN trained like a search candidate."""
    from torch import nn

    from nasforge.data import load_dataset
    from nasforge.evaluate.trainer import TrainingOptions, score, train

    data = load_dataset(str(data_path))
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, data.num_classes))
    start = time.process_time()
    train(model, data.x_train, data.y_train, TrainingOptions(epochs=epochs, batch_size=batch), seed)
    seconds = time.process_time() - start
    return score(model, data.x_test, data.y_test, data.num_classes)["accuracy"], seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-before", action="store_true", help="only the new defaults (the old ones take long)")
    parser.add_argument("--skip-after", action="store_true", help="only the old defaults")
    parser.add_argument("--before-seconds", type=float, default=600, help="wall-clock budget of the old-default 28x28 search")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--only", choices=("digits", "images"), default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"load before: {tuple(round(v, 2) for v in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.only in (None, "digits"):
            print("\n1. digits (1,078 training rows), 8 trials x 3 epochs, evolution")
            print(f"{'setting':<28} {'seed':>4} {'batch':>5} {'test acc':>8} {'CPU s':>7}")
            for seed in args.seeds:
                for name, extra, old in (("before: batch 128, no cap", ["--batch-size", "128"], OLD), ("after: defaults", [], None)):
                    r = run_search(["--dataset", "digits", "--trials", "8", "--epochs", "3", "--seed", str(seed), *extra],
                                   tmp / f"digits-{seed}-{len(extra)}", config=old)
                    print(f"{name:<28} {seed:>4} {r['batch']:>5} {r['test']:>8.4f} {r['cpu']:>7.1f}")
        if args.only in (None, "images"):
            data = make_digits28(tmp / "digits28.npz")
            with np.load(data) as f:
                sizes = {k: len(f[k]) for k in ("y", "y_val", "y_test")}
            print(f"\n2. 28x28 grayscale digits ({sum(sizes.values()):,} images: {sizes}), 10 trials x 5 epochs, evolution")
            print(f"{'setting':<34} {'seed':>4} {'batch':>5} {'trials':>6} {'test acc':>8} {'CPU s':>7} {'wall s':>7}")
            for seed in args.seeds:
                common = ["--dataset", str(data), "--trials", "10", "--epochs", "5", "--seed", str(seed)]
                if not args.skip_after:
                    r = run_search(common, tmp / f"img-after-{seed}")
                    print(f"{'after: defaults':<34} {seed:>4} {r['batch']:>5} {r['trials']:>6} {r['test']:>8.4f} {r['cpu']:>7.1f} "
                          f"{r['wall']:>7.1f}")
                    print(f"   best: {json.dumps(r['best'], separators=(',', ':'))[:300]}")
                    acc, secs = plain_cnn(data, 5, r["batch"], seed)
                    print(f"{'plain 3-conv CNN, 5 epochs':<34} {seed:>4} {r['batch']:>5} {'-':>6} {acc:>8.4f} {secs:>7.1f}")
                if not args.skip_before:
                    r = run_search([*common, "--batch-size", "128", "--seconds", str(args.before_seconds)], tmp / f"img-before-{seed}",
                                   config=OLD)
                    test = f"{r['test']:.4f}" if r["test"] is not None else "-"
                    print(f"{'before: batch 128, no cap':<34} {seed:>4} {r['batch']:>5} {r['trials']:>6} {test:>8} {r['cpu']:>7.1f} "
                          f"{r['wall']:>7.1f}  ({r['stop']})")
    print(f"\nload after: {tuple(round(v, 2) for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
