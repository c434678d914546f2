"""Search your own model family: a small ResNet on scikit-learn's digits (8x8 images, 10 classes).

The family is one function that builds the network and asks for each open decision where it is
used: the width, the depth, and per block its kernel and whether it is plain or residual (the
blocks' decisions exist only up to the depth chosen). nasforge searches it with regularized
evolution and with REINFORCE, exports the best network to ONNX, and loads it back twice: in
PyTorch through nasforge, and in onnxruntime, which needs neither nasforge nor this file.

    python examples/own_model.py                               # 24 trials x 4 epochs per strategy
    python examples/own_model.py --trials 3 --epochs 1 --out /tmp/own   # a quick look (the tests run this)

See docs/how-to/own-model.md for the same in a few lines.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

import nasforge


class Block(nn.Module):
    """conv -> batch norm -> ReLU, with or without a skip connection around it."""

    def __init__(self, width: int, kernel: int, residual: bool):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


def make_model(c: nasforge.Choices) -> nn.Module:
    width = c.choice("width", [16, 32, 64])
    blocks = []
    for i in range(c.int("depth", 1, 4)):
        kernel = c.choice(f"kernel{i}", [3, 5, 7])
        residual = c.choice(f"block{i}", ["plain", "residual"]) == "residual"
        blocks.append(Block(width, kernel, residual))
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), *blocks,
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))


def main(out: Path, trials: int, epochs: int) -> dict[str, float]:
    results = {}
    for strategy in ("evolution", "reinforce"):
        study = nasforge.search(space=make_model, dataset="digits", strategy=strategy, trials=trials, epochs=epochs,
                                seed=0, out=str(out / strategy), progress=False)
        best, test = study.best, study.final["test"]["accuracy"]
        results[strategy] = test
        print(f"{strategy:>9}: {len(study.trials)} trials, best trial {best.id}: validation accuracy {best.reward:.3f}, "
              f"test accuracy {test:.3f}  {study.space.describe(study.space.from_json(best.genome))}")
    winner = max(results, key=results.get)
    folder = nasforge.export_trial(out / winner, out / "model", format="onnx")
    print(f"exported the {winner} search's model to {folder}: {', '.join(sorted(p.name for p in folder.iterdir()))}")

    # Loaded back: in PyTorch (nasforge rebuilds the network with make_model), and in onnxruntime.
    x = torch.load(out / winner / "example.pt", weights_only=True)["x"]  # test inputs the run kept
    model = nasforge.load(folder)
    with torch.no_grad():
        expected = model(x)
    import onnxruntime

    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
    diff = float((got - expected).abs().max())
    print(f"onnxruntime vs PyTorch on {len(x)} test inputs: max abs difference {diff:.2g}, "
          f"same predictions: {bool((got.argmax(1) == expected.argmax(1)).all())}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24, help="trials per strategy (default 24)")
    parser.add_argument("--epochs", type=int, default=4, help="training epochs per trial (default 4)")
    parser.add_argument("--out", type=Path, default=Path("runs/own_model"), help="folder for the runs and the export")
    args = parser.parse_args()
    main(args.out, args.trials, args.epochs)
