"""What training a candidate would take in memory, known before any of it is allocated.

The network is built on PyTorch's `meta` device (tensors with shapes and no storage) and one sample
is run through it there, so the estimate costs milliseconds whatever the candidate's size, and it
works for every space without a formula per layer kind. Training memory is counted as

    16 bytes per parameter (weights, gradients, AdamW's two moments)
  + 8 bytes per activation element per sample x batch size (each module's output kept for the
    backward pass, and its gradient)

which is what dominates a CPU or GPU training step; the guard compares it with a limit (by default
half of the memory free when the candidate is evaluated) and a candidate over it is a failed trial,
never built: one oversized candidate must not take the machine down with the search.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from ..space.base import Genome, SearchSpace

BYTES_PER_PARAM = 16
BYTES_PER_ACTIVATION = 8
# Share of the free memory one candidate may plan to use when no limit is configured.
DEFAULT_SHARE = 0.5


@dataclass(frozen=True)
class Footprint:
    params: int
    activations: int | None  # elements per sample; None when the network could not run on the meta device
    batch_size: int

    @property
    def bytes(self) -> int:
        return BYTES_PER_PARAM * self.params + BYTES_PER_ACTIVATION * self.batch_size * (self.activations or 0)

    def describe(self) -> str:
        acts = (f", {_gb(BYTES_PER_ACTIVATION * self.batch_size * self.activations)} of activations at batch {self.batch_size}"
                if self.activations else "")
        return f"{_gb(self.bytes)} ({self.params:,} parameters: {_gb(BYTES_PER_PARAM * self.params)}{acts})"


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def estimate(space: SearchSpace, genome: Genome, example: torch.Tensor, batch_size: int) -> Footprint:
    """The training footprint of `genome` at `batch_size`, for inputs like `example` (a batch)."""
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        model = space.build(genome)
    params = sum(p.numel() for p in model.parameters())
    total = 0

    def count(_module: nn.Module, _inputs: object, output: object) -> None:
        nonlocal total
        for t in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(t, torch.Tensor):
                total += t.numel()

    model.eval()  # batch norm over one sample; the shapes are those of training
    hooks = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
    try:
        sample = torch.zeros((1, *example.shape[1:]), dtype=example.dtype, device="meta")
        with torch.no_grad():
            model(sample)
        activations: int | None = total
    except (NotImplementedError, RuntimeError):  # an op without a meta kernel: parameters alone
        activations = None
    finally:
        for h in hooks:
            h.remove()
    return Footprint(params, activations, batch_size)


def free_memory(device: torch.device | str = "cpu") -> int | None:
    """Bytes that can be allocated now on `device` (MemAvailable on Linux); None when unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError):
            return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check(space: SearchSpace, genome: Genome, example: torch.Tensor, batch_size: int, limit: float | None,
          device: torch.device | str = "cpu") -> tuple[Footprint | None, str | None]:
    """The footprint, and why the candidate must not be built (None when it may): over `limit` bytes,
    or with no limit given over DEFAULT_SHARE of the memory free on `device` now. A space whose build
    cannot run on the meta device (a user's model function creating CPU tensors) is not checked:
    (None, None), and the real build that follows reports any error of its own."""
    try:
        footprint = estimate(space, genome, example, batch_size)
    except Exception:
        return None, None
    if limit is None:
        free = free_memory(device)
        if free is None:
            return footprint, None
        limit, what = DEFAULT_SHARE * free, f"half of the {_gb(free)} free now (set training.max_memory_gb to change it)"
    else:
        what = "training.max_memory_gb"
    if footprint.bytes > limit:
        return footprint, (f"too large to train: needs about {footprint.describe()}, over the limit of {_gb(limit)} "
                           f"({what}); not built")
    return footprint, None
