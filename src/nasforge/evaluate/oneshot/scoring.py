"""Scoring one path of a trained supernet on the validation split, in milliseconds to a second.

How batch norm is treated decides much of how well these scores rank architectures (Yu et al. 2020,
"How to Train Your Super-Net"; Ning et al. 2020, "A Surgery of the Neural Architecture Evaluators"):

recalibrate  SPOS: the path's running statistics are recomputed on `bn_batches` fixed training
             batches (space/supernet/batchnorm.py), then the path is scored in eval mode: exactly
             what its extracted standalone network computes.
batch        ENAS / the NB201 paper's weight-sharing baselines: batch norm normalises each
             validation batch by its own statistics (no running statistics are read or changed).
stale        the running statistics the supernet's training left (what belongs to no path).

The recalibration batches and the validation rows are drawn once, from the seed, so a path's score
does not depend on when it is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ...errors import ConfigError
from ...space.supernet import recalibrate
from ...space.supernet.base import Supernet
from ...space.supernet.batchnorm import batch_norms
from ..metrics import classification_metrics
from ..trainer import model_device

BN_MODES = ("recalibrate", "batch", "stale")


@dataclass(frozen=True)
class ScoringOptions:
    bn: str = "recalibrate"
    bn_batches: int = 4
    batch_size: int = 128
    # Validation rows a path is scored on (None: all); fewer make a query cheaper and noisier.
    val_samples: int | None = None

    def __post_init__(self) -> None:
        if self.bn not in BN_MODES:
            raise ConfigError(f"batch-norm handling must be one of {', '.join(BN_MODES)}, got {self.bn!r}")
        if self.bn == "recalibrate" and self.bn_batches < 1:
            raise ConfigError(f"bn_batches: recalibration needs at least one batch, got {self.bn_batches}")


class PathScorer:
    def __init__(self, supernet: Supernet, x_train: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor, num_classes: int,
                 options: ScoringOptions, seed: int = 0):
        self.supernet, self.options, self.num_classes = supernet, options, num_classes
        device = model_device(supernet)  # recalibration batches and validation rows live there once
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(x_train), generator=generator)
        n = options.batch_size
        self.bn_batches = [x_train[order[i * n: (i + 1) * n]].to(device) for i in range(options.bn_batches) if i * n < len(x_train)]
        if options.val_samples is not None and options.val_samples < len(x_val):
            rows = torch.randperm(len(x_val), generator=generator)[: options.val_samples]
            x_val, y_val = x_val[rows], y_val[rows]
        self.x_val, self.y_val = x_val.to(device), y_val.to(device)
        self.labels = y_val.cpu().numpy()  # once: every query's metrics compare against them on the CPU

    @torch.no_grad()
    def score(self, genome: Any) -> dict[str, Any]:
        """Validation metrics of the genome's path with the shared weights."""
        net = self.supernet
        net.activate(genome)
        if self.options.bn == "recalibrate":
            recalibrate(net, self.bn_batches)
        if self.options.bn == "batch":
            return self._score_with_batch_statistics()
        net.eval()
        return self._metrics(net, batch_size=1024)

    def _score_with_batch_statistics(self) -> dict[str, Any]:
        norms = batch_norms(self.supernet)
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.momentum = 0.0  # train mode normalises by the batch; momentum 0 leaves the running statistics as they are
        self.supernet.train()
        try:
            return self._metrics(self.supernet, batch_size=self.options.batch_size)
        finally:
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum
            self.supernet.eval()

    def _metrics(self, net: nn.Module, batch_size: int) -> dict[str, Any]:
        preds, loss = [], 0.0
        for i in range(0, len(self.x_val), batch_size):
            logits = net(self.x_val[i: i + batch_size])
            loss += float(nn.functional.cross_entropy(logits, self.y_val[i: i + batch_size], reduction="sum"))
            preds.append(logits.argmax(1))
        pred = torch.cat(preds).cpu().numpy()
        return classification_metrics(self.labels, pred, self.num_classes, loss / max(1, len(self.y_val)))


def spearman_kendall(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Spearman's rho and Kendall's tau-b of two score vectors (scipy, imported when needed)."""
    from scipy.stats import kendalltau, spearmanr

    return float(spearmanr(a, b)[0]), float(kendalltau(a, b)[0])
