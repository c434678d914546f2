"""Try FSDD features and training options on the development measure, theo never used: each of the five
other speakers is held out in turn from the hand deep CNN (or a given genome) trained on the remaining four.

Prints, per seed, the mean accuracy over the five speakers of the network alone and with the 9 test-time
views (`dataset.test_views`), then the seeds' averaged predictions, per speaker. An option is worth taking
when, with views (as the example config scores), both the per-seed mean and the seeds' average rise over
the baseline's by more than the seeds scatter.

Unlike fsdd_splits.py, which trains through nasforge's trainer, this keeps its own short loop (AdamW, a
per-step cosine schedule, augmentation from its own seeded generator) so that options the trainer does not
have can be tried: mixup, a channel-width multiplier, delta features. Its figures for the same setting differ
from fsdd_splits.py's by a few tenths (90.3% vs 90.0% for the baseline without views).

    python benchmarks/studies/fsdd_options.py ../shared/data/fsdd/recordings --seed 0 1 2             # the baseline
    python benchmarks/studies/fsdd_options.py ../shared/data/fsdd/recordings --seed 0 1 2 --deltas    # one option
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nasforge.data.audio import MelOptions, SpectrogramAugment, SpectrogramViews, fsdd_features
from nasforge.ensemble import combine
from nasforge.space import Layer, LayerGenome, LayerGraphSpace
from nasforge.space.layers import LayerSpaceOptions

TEST_SPEAKER = "theo"  # examples/fsdd.yaml's held-out speaker: never trained on nor held out here
HAND_CNN = Path(__file__).resolve().parents[2] / "examples" / "genomes" / "fsdd_deep_cnn.json"


def deltas(x: np.ndarray) -> np.ndarray:
    """x (N x 1 x bands x frames) with its time derivative appended as a second channel: HTK's regression
    over +-2 frames, the edge frames repeated."""
    p = np.pad(x, ((0, 0), (0, 0), (0, 0), (2, 2)), mode="edge")
    d = ((p[..., 3:-1] - p[..., 1:-3]) + 2 * (p[..., 4:] - p[..., :-4])) / 10.0
    return np.concatenate([x, d.astype(np.float32)], axis=1)


def widened(genome: LayerGenome, width: float) -> LayerGenome:
    if width == 1.0:
        return genome
    return LayerGenome(tuple(Layer.of("conv", kernel=layer["kernel"], channels=max(1, int(layer["channels"] * width)),
                                      stride=layer["stride"]) if layer.kind == "conv" else layer for layer in genome.layers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recordings")
    parser.add_argument("--seed", type=int, nargs="+", default=[0])
    parser.add_argument("--speakers", nargs="+", help="held out in turn (default: every speaker but theo)")
    parser.add_argument("--genome", default=HAND_CNN, help="a layer genome (.json); default: the hand deep CNN")
    parser.add_argument("--width", type=float, default=1.0, help="multiply every convolution's channels")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--mixup", type=float, default=0.0, help="Beta(a, a) mixing of pairs of training clips (0: off)")
    parser.add_argument("--band-norm", default="mean", choices=["mean", "meanvar", "none"])
    parser.add_argument("--n-mels", type=int, default=40)
    parser.add_argument("--deltas", action="store_true", help="add the time derivative of the log-mels as a second channel")
    parser.add_argument("--shift", type=float, default=0.1)
    parser.add_argument("--stretch", type=float, default=0.1)
    parser.add_argument("--warp", type=float, default=0.0)
    parser.add_argument("--time-mask", type=float, default=0.0)
    parser.add_argument("--freq-mask", type=float, default=0.0)
    args = parser.parse_args()
    if args.speakers and TEST_SPEAKER in args.speakers:
        parser.error(f"{TEST_SPEAKER} is the example's test speaker: it is never held out (nor trained on) here")
    torch.set_num_threads(1)

    f = fsdd_features(args.recordings, MelOptions(n_mels=args.n_mels, band_norm=None if args.band_norm == "none" else args.band_norm))
    x_all, y_all, who = f["x"][:, None], f["digit"], f["speaker"]
    speakers = args.speakers or sorted(set(who.tolist()) - {TEST_SPEAKER})
    unknown = sorted(set(speakers) - set(who.tolist()))
    if unknown:
        parser.error(f"--speakers: no recordings of {', '.join(unknown)}")
    if args.deltas:
        x_all = deltas(x_all)
    if not Path(args.genome).is_file():
        parser.error(f"--genome: no file {args.genome}")
    if args.width <= 0:
        parser.error("--width must be positive")
    genome_json = json.loads(Path(args.genome).read_text())
    # The space must admit the genome's channels and their widened counts.
    given = {int(layer["channels"]) for layer in (genome_json["layers"] if isinstance(genome_json, dict) else genome_json)
             if "channels" in layer}
    channels = tuple(sorted(given | {max(1, int(c * args.width)) for c in given} | set(LayerSpaceOptions().channels)))
    space = LayerGraphSpace(tuple(x_all.shape[1:]), 10, LayerSpaceOptions(channels=channels))
    genome = widened(space.from_json(genome_json), args.width)
    augment = SpectrogramAugment(args.shift, args.stretch, args.warp, args.time_mask, args.freq_mask)
    views = SpectrogramViews()
    start = time.process_time()
    singles: dict[str, list[float]] = {"alone": [], "views": []}
    probs: dict[str, list[np.ndarray]] = {"alone": [], "views": []}
    for seed in args.seed:
        accs: dict[str, list[float]] = {"alone": [], "views": []}
        seed_probs: dict[str, list[np.ndarray]] = {"alone": [], "views": []}
        for speaker in speakers:
            train = (who != speaker) & (who != TEST_SPEAKER)
            x, y = torch.from_numpy(x_all[train]), torch.from_numpy(y_all[train])
            x_test, y_test = torch.from_numpy(x_all[who == speaker]), torch.from_numpy(y_all[who == speaker])
            mean, std = x.mean(dim=(0, 2, 3), keepdim=True), x.std(dim=(0, 2, 3), keepdim=True)
            x, x_test = (x - mean) / std, (x_test - mean) / std  # once, not per batch
            torch.manual_seed(seed)
            model = space.build(genome)
            opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs * math.ceil(len(x) / args.batch_size))
            order_gen, aug_gen = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
            for _ in range(args.epochs):
                model.train()
                order = torch.randperm(len(x), generator=order_gen)
                for i in range(0, len(x), args.batch_size):
                    idx = order[i:i + args.batch_size]
                    batch, target = augment(x[idx], aug_gen), y[idx]
                    if args.mixup > 0:
                        draw = int(torch.randint(0, 2**31, (1,), generator=aug_gen))
                        lam = float(np.random.default_rng(draw).beta(args.mixup, args.mixup))
                        perm = torch.randperm(len(idx), generator=aug_gen)
                        out = model(lam * batch + (1 - lam) * batch[perm])
                        loss = (lam * nn.functional.cross_entropy(out, target, label_smoothing=args.label_smoothing)
                                + (1 - lam) * nn.functional.cross_entropy(out, target[perm], label_smoothing=args.label_smoothing))
                    else:
                        loss = nn.functional.cross_entropy(model(batch), target, label_smoothing=args.label_smoothing)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    schedule.step()
            model.eval()
            with torch.no_grad():
                for how, net in (("alone", model), ("views", combine([model], views))):
                    p = net(x_test).softmax(-1).numpy()
                    seed_probs[how].append(p)
                    accs[how].append(float((p.argmax(1) == y_test.numpy()).mean()))
        for how in accs:
            singles[how].append(float(np.mean(accs[how])))
            probs[how].append(np.concatenate(seed_probs[how]))
        print(f"seed {seed}: mean over {len(speakers)} held-out speakers {singles['alone'][-1]:.4f} "
              f"({' '.join(f'{a:.3f}' for a in accs['alone'])}); with views {singles['views'][-1]:.4f} "
              f"({' '.join(f'{a:.3f}' for a in accs['views'])})", flush=True)
    y_test_all = np.concatenate([y_all[who == s] for s in speakers])
    sizes = np.cumsum([0] + [int((who == s).sum()) for s in speakers])
    for how in ("alone", "views"):
        hit = np.mean(probs[how], axis=0).argmax(1) == y_test_all
        per = [float(hit[a:b].mean()) for a, b in zip(sizes[:-1], sizes[1:])]
        print(f"{how:>5}: per-seed mean {np.mean(singles[how]):.4f}; seeds {', '.join(map(str, args.seed))} averaged "
              f"{np.mean(per):.4f} ({' '.join(f'{s[:4]} {a:.3f}' for s, a in zip(speakers, per))})")
    print(f"{time.process_time() - start:.0f} CPU-s")


if __name__ == "__main__":
    main()
