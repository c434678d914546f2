"""Define-by-run model families whose decisions are all choices among modules, for measuring how well
a supernet of a user's own model function ranks its architectures (supernet_ranking.py --space).

    python benchmarks/quality/supernet_ranking.py --space benchmarks/quality/ranking_families.py:mnist1d_ops ...
"""

from __future__ import annotations

from torch import nn

WIDTH = 32
# Every position chooses one of these (a MixedOp in the supernet): 5 ** 4 = 625 networks.
OPS = {
    "conv3": lambda: nn.Conv1d(WIDTH, WIDTH, 3, padding=1),
    "conv5": lambda: nn.Conv1d(WIDTH, WIDTH, 5, padding=2),
    "dil3": lambda: nn.Conv1d(WIDTH, WIDTH, 3, padding=2, dilation=2),
    "maxpool3": lambda: nn.MaxPool1d(3, stride=1, padding=1),
    "skip": nn.Identity,
}


def mnist1d_ops(c) -> nn.Module:
    """A 1-D CNN for MNIST-1D (1 x 40 inputs, 10 classes): a fixed stem, four searched operations with
    batch norm and ReLU after each, a downsampling after the second, global pooling and a linear head."""
    layers: list[nn.Module] = [nn.Conv1d(1, WIDTH, 3, padding=1), nn.BatchNorm1d(WIDTH), nn.ReLU()]
    for i in range(4):
        layers += [c.module(f"op{i}", OPS), nn.BatchNorm1d(WIDTH), nn.ReLU()]
        if i == 1:
            layers.append(nn.MaxPool1d(2))
    return nn.Sequential(*layers, nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(WIDTH, 10))
