"""Define-by-run model families whose decisions are all choices among modules, for measuring how well
a supernet of a user's own model function ranks its architectures (supernet_ranking.py --space) and
what a one-shot search of one returns (oneshot_search.py --space).

    python benchmarks/quality/supernet_ranking.py --space benchmarks/quality/ranking_families.py:mnist1d_ops ...
    PYTHONPATH=benchmarks/quality python benchmarks/quality/oneshot_search.py --space ranking_families:fsdd_ops ...
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


# FSDD (2-D log-mel spectrograms, 1 x 40 x 51, 10 digits): the skeleton of the hand-designed deep CNN
# (benchmarks/studies/fsdd_splits.py --baseline deep: five convolutions of 16, 32, 64, 64, 128 channels,
# batch norm + ReLU after each, a 2x2 max pool after the first four, global pooling), with each
# convolution's operation searched: 5 ** 5 = 3,125 networks, the hand CNN (all conv3) one of them.
FSDD_CHANNELS = (16, 32, 64, 64, 128)


def _fsdd_ops(c_in: int, c_out: int) -> dict:
    return {
        "conv3": lambda: nn.Conv2d(c_in, c_out, 3, padding=1),
        "conv5": lambda: nn.Conv2d(c_in, c_out, 5, padding=2),
        "dil3": lambda: nn.Conv2d(c_in, c_out, 3, padding=2, dilation=2),
        "sep3": lambda: nn.Sequential(nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in), nn.Conv2d(c_in, c_out, 1)),
        "conv1": lambda: nn.Conv2d(c_in, c_out, 1),
    }


def fsdd_ops(c) -> nn.Module:
    layers: list[nn.Module] = []
    c_in = 1
    for i, c_out in enumerate(FSDD_CHANNELS):
        layers += [c.module(f"op{i}", _fsdd_ops(c_in, c_out)), nn.BatchNorm2d(c_out), nn.ReLU()]
        if i < 4:
            layers.append(nn.MaxPool2d(2))
        c_in = c_out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, 10))

