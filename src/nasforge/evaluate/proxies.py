"""Zero-cost proxies: scores of an untrained network that correlate with its trained accuracy.

- synflow (Tanaka et al. 2020; as a NAS proxy, Abdelfattah et al. 2021): with all weights made
  positive and a single all-ones input, sum over parameters of |theta * dR/dtheta| where
  R = sum of the output. Data-free.
- naswot (Mellor et al. 2021): log-determinant of the kernel of binary ReLU-activation codes of
  a mini-batch; networks that separate inputs well score high.

Both are computed on a copy unless the caller built the model only to be scored (`inplace`).
synflow runs in float32 and is repeated in float64 only when float32 overflows (its products of
absolute weights can, in deep nets); the log of the score is returned.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn


@torch.no_grad()
def _linearize(model: nn.Module) -> dict[str, torch.Tensor]:
    signs = {}
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            signs[name] = torch.sign(tensor)
            tensor.abs_()
    return signs


def synflow(model: nn.Module, input_shape: tuple[int, ...], inplace: bool = False,
            dtype: torch.dtype = torch.float32) -> float:
    """`inplace` lets the proxy overwrite a model built only to be scored (saves a copy). Computed in
    `dtype`, and again in float64 when that overflows (an infinite or NaN score)."""
    value = _synflow(model if inplace else copy.deepcopy(model), input_shape, dtype)
    if not math.isfinite(value) and dtype != torch.float64:
        # Overflow (or underflow to 0) in float32. With `inplace` the weights are already |w|, and
        # linearising is idempotent, so scoring the same model again gives the float64 score.
        value = _synflow(model if inplace else copy.deepcopy(model), input_shape, torch.float64)
    return value


def _synflow(net: nn.Module, input_shape: tuple[int, ...], dtype: torch.dtype) -> float:
    net = net.to(dtype)
    # BatchNorm in eval mode with its fresh statistics is an affine identity: what synflow assumes.
    net.eval()
    _linearize(net)
    net.zero_grad()
    x = torch.ones((1, *input_shape), dtype=dtype)
    net(x).sum().backward()
    total = 0.0
    for p in net.parameters():
        if p.grad is not None:
            total += float((p.detach() * p.grad).abs().sum(dtype=torch.float64))
    if not math.isfinite(total):
        return math.nan
    return math.log(total) if total > 0 else -math.inf


def naswot(model: nn.Module, x: torch.Tensor, inplace: bool = False) -> float:
    net = model if inplace else copy.deepcopy(model)  # the forward pass updates batch-norm statistics
    net.train()
    codes: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        codes.append((output.detach().flatten(1) > 0).double())

    activations = (nn.ReLU, nn.GELU, nn.SiLU, nn.ELU, nn.LeakyReLU, nn.Tanh)
    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, activations)]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    if not codes:
        return 0.0  # no non-linearity: every input falls in one linear region
    c = torch.cat(codes, dim=1)
    # K[i, j] = number of units where i and j agree = c c^T + (1-c)(1-c)^T.
    k = c @ c.T + (1 - c) @ (1 - c).T
    sign, logdet = np.linalg.slogdet(k.numpy())
    return float(logdet) if sign > 0 else -math.inf


PROXIES: dict[str, Callable[..., float]] = {"synflow": synflow, "naswot": naswot}


def score_proxies(model: nn.Module, x_batch: torch.Tensor, names: tuple[str, ...] = ("synflow", "naswot"),
                  inplace: bool = False) -> dict[str, float]:
    """The named proxies of an untrained model; `x_batch` is a real mini-batch of inputs. With
    `inplace` the (last) proxy may alter the model: for models built only to be scored."""
    out = {}
    for i, name in enumerate(names):
        last = inplace and i == len(names) - 1
        if name == "synflow":
            out[name] = synflow(model, tuple(x_batch.shape[1:]), inplace=last)
        elif name == "naswot":
            out[name] = naswot(model, x_batch, inplace=last)
        else:
            raise ValueError(f"unknown proxy {name!r}; known: {sorted(PROXIES)}")
    return out
