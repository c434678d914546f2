"""The returned model as an ensemble of the search's best networks (`training.final_ensemble: N`).

A search trains many networks and keeps the weights of its best few; averaging their predicted
probabilities is the cheapest gain left at the end (Auto-sklearn's and Neural Ensemble Search's
observation): members found by one search make different mistakes on new data, and the average
of N probability vectors is often more accurate than its best member.
Measured (README): on rt-polarity the best trial alone scored 77.0% on test, the five best averaged
77.6%; on FSDD's held-out speaker, where validation (other voices) is ~99% for every good
candidate and so cannot rank them, the average scored below the best alone (89.4% vs 93.0%).

With test-time views (`dataset.test_views`, a module returning a stack of transformed copies of the
input) the mean runs over every member and every view; one network with views is an ensemble of one.

The ensemble is an ordinary `nn.Module` that returns log-probabilities: they act as logits
everywhere a single network's output is used (argmax is the ensemble's vote, cross-entropy of
them is the ensemble's loss), and it traces to TorchScript and ONNX like any network.
For the other tasks it returns what a member would: multi-label, the logit of the mean of each
label's probability; regression, the mean of the members' predictions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def combine(models: Sequence[nn.Module], views: nn.Module | None = None, task: str = "classification") -> nn.Module:
    """The returned model of N trained networks: the network itself when N is 1 and there are no
    test-time views, else their Ensemble."""
    return models[0] if len(models) == 1 and views is None else Ensemble(models, views, task)


class Ensemble(nn.Module):
    """Mean of the members' softmax probabilities over the last dimension, returned as its log; with
    `views` (x -> views x batch x ...), the mean over every member on every view."""

    def __init__(self, members: Sequence[nn.Module], views: nn.Module | None = None, task: str = "classification"):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.views = views
        self.task = task

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.task in ("multilabel", "regression"):
            stacked = self.views(x) if self.views is not None else x[None]
            flat = stacked.reshape(-1, *stacked.shape[2:])
            outs = torch.cat([member(flat).reshape(stacked.shape[0], x.shape[0], -1) for member in self.members])
            if self.task == "regression":
                return outs.mean(dim=0)
            p = torch.sigmoid(outs).mean(dim=0).clamp(1e-7, 1 - 1e-7)
            return torch.log(p) - torch.log1p(-p)
        if self.views is None:
            log_probs = torch.stack([member(x).log_softmax(dim=-1) for member in self.members])
        else:
            stacked = self.views(x)  # views x batch x ...
            flat = stacked.reshape(-1, *stacked.shape[2:])  # one forward pass per member over all views
            log_probs = torch.cat([member(flat).log_softmax(dim=-1).reshape(stacked.shape[0], x.shape[0], -1)
                                   for member in self.members])
        # log(mean(p)) computed stably in log space.
        return torch.logsumexp(log_probs, dim=0) - math.log(log_probs.shape[0])
