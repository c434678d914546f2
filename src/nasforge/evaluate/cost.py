"""What a candidate costs to deploy, measured on the built network before any training.

- `params`: trainable and frozen parameters;
- `flops`: floating-point operations of one forward pass of one sample, counted by PyTorch's own
  `torch.utils.flop_counter.FlopCounterMode` (a multiply-add counts as 2; elementwise ops,
  activations and biases are not counted, as in that counter);
- `size_bytes`: bytes of parameters and buffers, i.e. the size of the weights in memory;
- `latency_ms`: inference latency of one batch (`batch_size` samples) in eval mode and float32 on
  the chosen device (`device`: cpu, or cuda, the GPU the trial runs on): `warmup` untimed runs, then
  the median of `repeats` timed ones, in milliseconds. On a GPU every timed pass ends with
  torch.cuda.synchronize (kernels run asynchronously: without it the clock stops when the launches
  are queued, not when they finish), as torch.utils.benchmark.Timer does; the trial records how it
  was timed under `latency_setup` (device, batch, warmup, repeats).

Latency is a measurement, not a count: it depends on the machine, its load and torch's thread
count, so the median of several runs is used and the value is recorded per trial, not assumed.
benchmarks/performance/latency_timer.py compares this timer with torch's Timer.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..space.base import Genome, SearchSpace

MEASURES = ("params", "flops", "size_bytes", "latency_ms")
# Read off the genome by its space, without building it (SearchSpace.receptive_field).
GENOME_MEASURES = ("receptive_field",)


def genome_measures(space: SearchSpace, genome: Genome, which: Iterable[str]) -> dict[str, float | int]:
    out: dict[str, float | int] = {}
    for name in set(which) & set(GENOME_MEASURES):
        value = getattr(space, name)(genome)
        if value is None:
            raise ValueError(f"the {space.name!r} space has no {name}")
        out[name] = value
    return out


@dataclass(frozen=True)
class CostOptions:
    batch_size: int = 1  # samples per timed forward pass
    warmup: int = 3
    repeats: int = 10
    device: str = "cpu"  # where latency is timed: "cpu" or "cuda" (this process's current GPU)

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.warmup < 0 or self.repeats < 1:
            raise ValueError("cost options need batch_size >= 1, warmup >= 0 and repeats >= 1")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"cost options: latency is timed on cpu or cuda, not {self.device!r}")


DEFAULT_COSTS = CostOptions()


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def size_bytes(model: nn.Module) -> int:
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


@contextmanager
def _inference(model: nn.Module) -> Iterator[None]:
    """Eval mode (batch norm on running statistics, so one sample is a valid batch), no autograd and
    no effect on the global RNG; the model's mode is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            yield
    finally:
        model.train(was_training)


def materialize(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """Give lazy modules (nn.LazyLinear, ...: common in a user's own model function, which need not
    know the flattened size) their shapes with one forward pass of one sample of `example`, so that
    their parameters can be counted, inherited and handed to an optimizer. A no-op for other models."""
    from torch.nn.modules.lazy import LazyModuleMixin

    if any(isinstance(m, LazyModuleMixin) and m.has_uninitialized_params() for m in model.modules()):
        with _inference(model):
            model(example[:1])
    return model


def count_flops(model: nn.Module, example: torch.Tensor) -> int:
    """FLOPs of one forward pass of `example` (pass one sample for per-sample FLOPs)."""
    with _inference(model):
        counter = FlopCounterMode(display=False)
        with counter:
            model(example)
    return int(counter.get_total_flops())


def forward_times(model: nn.Module, example: torch.Tensor, warmup: int = 3, repeats: int = 10) -> list[float]:
    """Seconds of each of `repeats` forward passes of `example` (on the model's device), after
    `warmup` untimed ones. On CUDA the device is synchronised before the clock starts and before it
    stops, so each time covers the kernels themselves, not only their launch."""
    device = example.device
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    with _inference(model):
        for _ in range(warmup):
            model(example)
        sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(example)
            sync()
            times.append(time.perf_counter() - start)
    return times


def measure_latency_ms(model: nn.Module, example: torch.Tensor, warmup: int = 3, repeats: int = 10) -> float:
    """Median time of a forward pass of `example` on the model's device, in milliseconds, after `warmup` runs."""
    return 1000.0 * statistics.median(forward_times(model, example, warmup, repeats))


def latency_on(model: nn.Module, batch: torch.Tensor, options: CostOptions) -> float:
    """latency_ms of `model` on `options.device`; the model is moved there for the timing and back."""
    if options.device == "cpu":
        return measure_latency_ms(model, batch, options.warmup, options.repeats)
    home = next((p.device for p in model.parameters()), torch.device("cpu"))
    device = torch.device(options.device)
    try:
        return measure_latency_ms(model.to(device), batch.to(device), options.warmup, options.repeats)
    finally:
        model.to(home)


def measure_costs(model: nn.Module, example: torch.Tensor, options: CostOptions = DEFAULT_COSTS,
                  which: Iterable[str] = MEASURES) -> dict[str, Any]:
    """The requested measures of a built model. `example` is a batch of real inputs: its first sample
    is used for FLOPs and its first `options.batch_size` samples (repeated if it has fewer) for latency,
    which also gives `latency_setup`: how it was timed."""
    which = set(which)
    unknown = which - set(MEASURES)
    if unknown:
        raise ValueError(f"unknown cost measure(s) {sorted(unknown)}; known: {', '.join(MEASURES)}")
    out: dict[str, Any] = {}
    if "params" in which:
        out["params"] = count_params(model)
    if "size_bytes" in which:
        out["size_bytes"] = size_bytes(model)
    if "flops" in which:
        out["flops"] = count_flops(model, example[:1])
    if "latency_ms" in which:
        batch = example[: options.batch_size]
        if len(batch) < options.batch_size:
            reps = -(-options.batch_size // len(batch))
            batch = batch.repeat(reps, *([1] * (batch.dim() - 1)))[: options.batch_size]
        out["latency_ms"] = latency_on(model, batch, options)
        out["latency_setup"] = {"device": options.device, "batch": options.batch_size, "warmup": options.warmup,
                                "repeats": options.repeats}
    return out


class CostModel:
    """Cost measures of genomes of one space, from freshly built (untrained) networks; cached by
    genome key, so a strategy that proposes a genome again pays nothing."""

    def __init__(self, space: SearchSpace, example: torch.Tensor, options: CostOptions = DEFAULT_COSTS):
        self.space, self.example, self.options = space, example, options
        self._cache: dict[str, dict[str, float | int]] = {}

    def __call__(self, genome: Genome, which: Iterable[str] = MEASURES) -> dict[str, float | int]:
        which = set(which)
        key = self.space.key(genome)
        known = self._cache.setdefault(key, {})
        known.update(genome_measures(self.space, genome, which - set(known)))
        missing = which - set(known)
        if missing:
            # Counts (params, FLOPs, bytes) need shapes only: built on the meta device they cost no
            # memory and no arithmetic, whatever the candidate's size; latency needs the real network.
            measured = self._on_meta(genome, missing) if not missing & {"latency_ms"} else None
            if measured is None:
                # Building draws initial weights: keep that off the RNG that seeds training.
                with torch.random.fork_rng(devices=[]):
                    model = materialize(self.space.build(genome), self.example)
                measured = measure_costs(model, self.example, self.options, missing)
            known.update(measured)
        return {k: known[k] for k in which}

    def _on_meta(self, genome: Genome, which: set[str]) -> dict[str, float | int] | None:
        """The counts from the network built on the meta device; None where the space's build cannot
        run there (a user's model function that makes CPU tensors): it is then built for real."""
        example = torch.zeros_like(self.example[:1], device="meta")
        try:
            with torch.random.fork_rng(devices=[]), torch.device("meta"):
                model = materialize(self.space.build(genome), example)
                return measure_costs(model, example, self.options, which)
        except Exception:
            return None
