"""Losses and optimizers of the built-in trainer, by name or as the user's own callables.

Losses take (outputs, targets) and return a scalar tensor:
- cross_entropy: single-label classification (targets: class indices; `label_smoothing` applies);
- bce_with_logits: multi-label (targets: samples x labels of 0 / 1, outputs: one logit per label);
- mse, l1, huber: regression (targets: samples x targets, standardised by the trainer, see tasks.py).
A callable `loss(outputs, targets)` replaces them: it sees what the named loss would (for regression,
standardised targets), e.g. a focal loss for imbalanced classes.

Optimizers: adamw (decoupled weight decay) or sgd (with `momentum`, optionally Nesterov); or a
factory called as `factory(params, lr=..., weight_decay=...)`, so a torch.optim class itself
(`torch.optim.RMSprop`) is one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from ..errors import TrialFailure

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# name -> the tasks it trains.
LOSSES: dict[str, tuple[str, ...]] = {
    "cross_entropy": ("classification",),
    "bce_with_logits": ("multilabel",),
    "mse": ("regression",),
    "l1": ("regression",),
    "huber": ("regression",),
}
DEFAULT_LOSS = {"classification": "cross_entropy", "multilabel": "bce_with_logits", "regression": "mse"}
OPTIMIZERS = ("adamw", "sgd")


def named_loss(name: str, label_smoothing: float = 0.0) -> LossFn:
    if name == "cross_entropy":
        return lambda out, y: nn.functional.cross_entropy(out, y, label_smoothing=label_smoothing)
    if name == "bce_with_logits":
        return nn.functional.binary_cross_entropy_with_logits
    if name == "mse":
        return nn.functional.mse_loss
    if name == "l1":
        return nn.functional.l1_loss
    if name == "huber":
        return nn.functional.huber_loss
    raise ValueError(f"unknown loss {name!r}; choose from {', '.join(LOSSES)} or pass a callable")


class UserLoss:
    """The user's loss callable: an exception from it, or a result that is not a scalar tensor,
    fails the trial with the user's message instead of surfacing deep inside the trainer."""

    def __init__(self, fn: LossFn):
        if not callable(fn):
            raise TypeError(f"loss must be a name or a callable, got {type(fn).__name__}")
        self.fn = fn
        self.name = getattr(fn, "__name__", type(fn).__name__)

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        try:
            value = self.fn(outputs, targets)
        except Exception as exc:
            raise TrialFailure(f"loss {self.name!r} raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise TrialFailure(f"loss {self.name!r} must return a scalar tensor, got {type(value).__name__}"
                               + (f" of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else ""))
        return value.reshape(())

    def __repr__(self) -> str:
        return f"UserLoss({self.name!r})"


def make_optimizer(spec: str | Callable[..., torch.optim.Optimizer], params: Iterable[nn.Parameter], lr: float,
                   weight_decay: float, momentum: float = 0.9, nesterov: bool = False) -> torch.optim.Optimizer:
    if callable(spec):
        try:
            optimizer: Any = spec(params, lr=lr, weight_decay=weight_decay)
        except Exception as exc:
            raise TrialFailure(f"optimizer factory {getattr(spec, '__name__', spec)!r} raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TrialFailure(f"optimizer factory must return a torch.optim.Optimizer, got {type(optimizer).__name__}")
        return optimizer
    if spec == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if spec == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov and momentum > 0)
    raise ValueError(f"unknown optimizer {spec!r}; choose from {', '.join(OPTIMIZERS)} or pass a factory")
