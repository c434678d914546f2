"""Train one layer genome on FSDD splits and report test accuracy: the upstream split (takes 0-4),
and each of the six speakers held out in turn (with their mean).

The genome is the final model of a search run (`--run runs/fsdd`) or the hand-designed 2-D CNN
baseline (`--baseline`: conv16-pool-conv32-pool-conv64, batch norm + ReLU, global pooling;
`--baseline deep`: conv16-pool-conv32-pool-conv64-pool-conv64-pool-conv128).
Training options come from the run's config (epochs: its final_epochs when set) or the flags; one torch
thread; CPU time reported. With `--test-views` (or a run with `dataset.test_views`) every model is
scored as the average of its predictions over 9 shifted and frequency-warped copies of each input.

    python benchmarks/studies/fsdd_splits.py ../shared/data/fsdd/recordings --run runs/fsdd
    python benchmarks/studies/fsdd_splits.py ../shared/data/fsdd/recordings --baseline --splits upstream theo
    python benchmarks/studies/fsdd_splits.py ../shared/data/fsdd/recordings --baseline deep --epochs 15 --splits theo --seed 0 1 2

`--exclude-speaker theo` never trains on theo: each other speaker held out in turn is then tested by a model
trained on the remaining four, a development measure for choosing features and training options without
looking at theo (the held-out-speaker test split of examples/fsdd.yaml):

    python benchmarks/studies/fsdd_splits.py ../shared/data/fsdd/recordings --baseline deep --epochs 15 --exclude-speaker theo \
        --band-norm mean --label-smoothing 0.1
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from nasforge.data import load_dataset
from nasforge.data.datasets import SourceOptions, make_views
from nasforge.ensemble import combine
from nasforge.evaluate.trainer import TrainingOptions, score, train
from nasforge.space import Layer, LayerGenome, LayerGraphSpace
from nasforge.space.resolve import space_from_record
from nasforge.store import Store

SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")


# Hand-designed 2-D CNNs: conv3 + batch norm + ReLU per entry, a 2x2 max pool after the first `pools`.
# "deep" pools four times (40 x 51 -> 2 x 3), so the last convolutions see the whole word before the
# global pooling (12.7M flops): with --epochs 15, 94.2% on theo, 89.7% mean over the six held-out
# speakers (min 84.6%, nicolas), 100% upstream; "small" (9.6M flops): 79.2% on theo, mean 76.0%.
BASELINES = {"small": ((16, 32, 64), 2), "deep": ((16, 32, 64, 64, 128), 4)}


def baseline_genome(name: str = "small") -> LayerGenome:
    channels_per_conv, pools = BASELINES[name]
    layers = []
    for i, channels in enumerate(channels_per_conv):
        layers += [Layer.of("conv", kernel=3, channels=channels, stride=1), Layer.of("norm"), Layer.of("act", fn="relu")]
        if i < pools:
            layers.append(Layer.of("pool", op="max", size=2))
    return LayerGenome(tuple(layers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recordings")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", help="search run directory: its final genome and training options")
    which.add_argument("--baseline", nargs="?", const="small", choices=sorted(BASELINES),
                       help="a hand-designed 2-D CNN: small (3 convs, 2 pools; the default) or deep (5 convs, 4 pools)")
    parser.add_argument("--splits", nargs="+", help="upstream and/or speaker names (default: upstream and every speaker; "
                        "with --exclude-speaker, every other speaker)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--layout", default="nhw")
    parser.add_argument("--seed", type=int, nargs="+", default=[0],
                        help="one or more seeds; with several, each split reports the mean and the seeds' averaged prediction")
    parser.add_argument("--exclude-speaker", help="never train on this speaker (a development measure that keeps it unseen)")
    parser.add_argument("--band-norm", choices=["mean", "meanvar"], help="per-recording mel band normalisation (MelOptions.band_norm)")
    parser.add_argument("--label-smoothing", type=float, default=0.0)
    parser.add_argument("--test-views", action="store_true",
                        help="score the average over 9 shifted / warped copies of each input (dataset.test_views)")
    args = parser.parse_args()
    if args.splits is None:
        args.splits = [s for s in SPEAKERS if s != args.exclude_speaker] if args.exclude_speaker else ["upstream", *SPEAKERS]
    if args.exclude_speaker in args.splits:
        parser.error(f"--exclude-speaker {args.exclude_speaker} is never trained on, so it cannot also be held out: drop it from --splits")
    torch.set_num_threads(1)
    training = TrainingOptions(epochs=20, batch_size=64, lr=3e-3, weight_decay=1e-4, label_smoothing=args.label_smoothing)
    if args.run:
        store = Store.in_dir(args.run)
        config, final, info = store.get("config"), store.get("final"), store.get("space")
        genome_json = store.trial(final["trial"]).genome
        store.close()
        t = config["training"]
        # The returned network trains final_epochs when the run sets it (the search may train fewer).
        training = TrainingOptions(epochs=t.get("final_epochs") or t["epochs"], batch_size=t["batch_size"], lr=t["lr"],
                                   weight_decay=t["weight_decay"],
                                   cosine=t["cosine"], label_smoothing=t.get("label_smoothing", 0.0))
        args.layout = config["dataset"]["layout"]
        args.band_norm = config["dataset"].get("band_norm")
        args.test_views = config["dataset"].get("test_views", False)
        space = space_from_record(info)  # the run's own space: layers, cell, a model function, ...
        genome = space.from_json(genome_json)
    else:
        genome = baseline_genome(args.baseline)
    results = {}
    for split in args.splits:
        if split == "upstream":
            options = SourceOptions("upstream", band_norm=args.band_norm, test_views=args.test_views)
        else:
            options = SourceOptions("speaker", split, val_speaker=args.exclude_speaker, band_norm=args.band_norm,
                                    test_views=args.test_views)
        data = load_dataset(f"fsdd:{args.recordings}", val_fraction=0.1, layout=args.layout, options=options)
        # The excluded speaker is loaded as the validation split, which is then left out of training.
        excluded = args.exclude_speaker is not None and split != "upstream"
        x_fit = data.x_train if excluded else torch.cat([data.x_train, data.x_val])
        y_fit = data.y_train if excluded else torch.cat([data.y_train, data.y_val])
        if not args.run:  # a run's genome is built by the run's own space (layers, cell, ...)
            space = LayerGraphSpace(data.input_shape, data.num_classes)
        start = time.process_time()
        accs, probs = [], []
        for seed in args.seed:
            torch.manual_seed(seed)
            model = space.build(genome)
            # Train on every training recording (the search's validation split included, an excluded speaker not),
            # augmented as in the search.
            train(model, x_fit, y_fit, training, seed, epochs=args.epochs, augment=data.augment)
            model = combine([model], make_views(data.test_views))  # the network itself without test_views
            accs.append(score(model, data.x_test, data.y_test, data.num_classes)["accuracy"])
            with torch.no_grad():
                probs.append(model.eval()(data.x_test).softmax(-1))
        results[split] = float(np.mean(accs))
        line = f"{split:>9}: test accuracy {results[split]:.4f} ({len(data.y_test)} recordings)"
        if len(accs) > 1:
            averaged = float((torch.stack(probs).mean(0).argmax(1) == data.y_test).float().mean())
            line += (f" = mean over seeds {', '.join(map(str, args.seed))}: {' '.join(f'{a:.3f}' for a in accs)}; "
                     f"their averaged probabilities {averaged:.4f}")
        print(f"{line}, {time.process_time() - start:.0f} CPU-s", flush=True)
    speakers = [results[s] for s in SPEAKERS if s in results]
    if len(speakers) > 1:
        print(f"mean over {len(speakers)} held-out speakers: {np.mean(speakers):.4f} (min {min(speakers):.4f})")
    print(f"genome: {space.describe(genome)}" + (" (scored with test-time views)" if args.test_views else ""))


if __name__ == "__main__":
    main()
