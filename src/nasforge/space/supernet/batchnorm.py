"""Batch-norm statistics of one path of a supernet.

Every path trains the shared batch-norm layers with its own activations, so the running statistics
a supernet ends with belong to no path (mostly to the last ones sampled). SPOS (Guo et al., 2020)
recomputes them for each path on a few training batches before scoring it; `recalibrate` does that:
it resets the running mean and variance, runs the batches through the active path in training mode
with a cumulative average (momentum None), and changes nothing else (no parameter, no other buffer).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, _BN) and m.track_running_stats]


@torch.no_grad()
def recalibrate(model: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Running statistics of every batch-norm layer the active path uses, from `batches` (inputs only).
    Layers off the path see no batch and are reset to the defaults (mean 0, variance 1): their
    statistics were stale anyway, and the path never reads them. The model is left in eval mode."""
    norms = batch_norms(model)
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch weighs the same
    model.train()
    try:
        for x in batches:
            model(x)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.eval()
