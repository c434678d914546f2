"""How a network runs on its device, following PyTorch's performance tuning guide: the precision of
its arithmetic, the memory format of 2-D convolution nets, compiling, peak memory, and what is done
when a candidate runs out of device memory.

- `precision`: "32" (float32 throughout), "bf16" (autocast to bfloat16 around the forward pass and
  the loss, CPU and CUDA; weights, gradients and the optimizer stay float32) or "16-mixed" (autocast
  to float16 plus gradient scaling, CUDA only: float16 gradients underflow without it). Backward
  runs outside autocast, as the guide says.
- `channels_last`: a network with 2-D convolutions keeps its weights, and each 4-D batch, in NHWC
  order (faster convolutions with cuDNN / oneDNN, most of all under autocast); a no-op, noted once,
  for networks without them.
- `run_compiled`: torch.compile for the final retrain only, falling back to eager with a warning
  when the compiler fails (a search would compile a new graph per candidate, which costs more than
  most candidates train: benchmarks/performance/compile_final.py).
- `PeakMemory`: the peak device memory a trial allocated (CUDA's allocator keeps the statistic; on
  the CPU there is no per-trial figure, see its docstring).
- `is_out_of_memory` / `release_device_memory`: a candidate too large for the device is a failed
  trial, and the memory it held is handed back before the next one starts.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from ..data.batches import indexed_device
from ..errors import ConfigError

log = logging.getLogger("nasforge")

PRECISIONS = ("32", "bf16", "16-mixed")
# Other spellings accepted in configs (YAML reads `precision: 32` as a number); Lightning's names too.
PRECISION_ALIASES = {"32": "32", "32-true": "32", "fp32": "32", "float32": "32",
                     "bf16": "bf16", "bf16-mixed": "bf16", "bfloat16": "bf16",
                     "16": "16-mixed", "16-mixed": "16-mixed", "fp16": "16-mixed", "float16": "16-mixed"}
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "16-mixed": torch.float16}


def canonical_precision(value: Any) -> str:
    """The precision's canonical name ("32", "bf16", "16-mixed"); ValueError listing the choices."""
    key = str(int(value)) if isinstance(value, (int, float)) and not isinstance(value, bool) and value == int(value) else str(value)
    try:
        return PRECISION_ALIASES[key.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown precision {value!r}; choose 32, bf16 or 16-mixed") from None


def check_precision(precision: str, device: torch.device, where: str = "training.precision") -> None:
    """ConfigError when `device` cannot train in `precision` (before anything runs)."""
    precision = canonical_precision(precision)
    if precision == "32":
        return
    if device.type == "cpu" and precision == "16-mixed":
        raise ConfigError(f"{where}: 16-mixed (float16 autocast with gradient scaling) needs a CUDA device, and training runs "
                          "on the CPU here (training.device resolves to cpu); use bf16 (CPU autocast) or 32")
    if device.type == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"{where}: bf16 needs a GPU with bfloat16 support (NVIDIA Ampere or newer); "
                          f"{torch.cuda.get_device_name(device)} has none: use 16-mixed or 32")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"{where}: {precision} is available on cpu and cuda devices, not on {device.type}; use 32")


@dataclass(frozen=True)
class DeviceRun:
    """How one network runs on its device: where, in which precision, in which memory format.
    `autocast()` wraps forward + loss; `input(x)` puts a batch in the network's memory format;
    `scaler()` is a fresh GradScaler for 16-mixed (one per training run), else None."""

    device: torch.device
    precision: str = "32"
    channels_last: bool = False

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        dtype = _AUTOCAST_DTYPES.get(self.precision)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def input(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def scaler(self) -> torch.amp.GradScaler | None:
        return torch.amp.GradScaler(self.device.type) if self.precision == "16-mixed" else None

    def describe(self) -> dict[str, Any]:
        """What a trial records about where it ran: `device` (with its index: cuda:0) and
        `training_precision` (not `precision`, which is the classification metric)."""
        return {"device": str(indexed_device(self.device)), "training_precision": self.precision}


def has_conv2d(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


_noted: set[str] = set()


def _note_once(message: str) -> None:
    if message not in _noted:
        _noted.add(message)
        log.info(message)


def place(model: nn.Module, device: torch.device, precision: str = "32", channels_last: bool = False) -> DeviceRun:
    """Move `model` to `device` (in NHWC order when `channels_last` and it has 2-D convolutions) and
    say how it runs there. A network without 2-D convolutions stays as it is; that is noted once."""
    if channels_last and not has_conv2d(model):
        _note_once("training.channels_last: a network without 2-D convolutions keeps its memory format "
                   "(channels_last applies to 2-D convolution nets only)")
        channels_last = False
    if channels_last:
        # Module.to takes memory_format at run time (it is passed on to Tensor.to); torch's overloads omit it.
        model.to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    else:
        model.to(device)
    return DeviceRun(device, canonical_precision(precision), channels_last)


def backward_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None,
                  clip: tuple[Any, float] | None = None) -> None:
    """loss.backward() and optimizer.step(), through the gradient scaler when there is one (16-mixed);
    `clip` = (parameters, max_norm) clips the unscaled gradients' norm first."""
    if scaler is None:
        loss.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(clip[0], clip[1])
        optimizer.step()
        return
    scaler.scale(loss).backward()
    if clip is not None:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(clip[0], clip[1])
    scaler.step(optimizer)  # skipped (and the scale lowered) when the gradients overflowed
    scaler.update()


@contextlib.contextmanager
def scaled_steps(scaler: torch.amp.GradScaler | None) -> Iterator[None]:
    """Quiet the learning-rate scheduler's warning about a skipped first optimizer step: with gradient
    scaling the first steps are skipped on purpose until the scale fits the gradients."""
    if scaler is None:
        yield
        return
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before `optimizer\.step\(\)`")
        yield


class PeakMemory:
    """The peak memory a trial allocated on its device, in MiB: CUDA's `max_memory_allocated` since
    the trial began (everything this process had allocated on the GPU at the peak, the data held there
    included). None on the CPU: the process's peak RSS cannot be reset per trial without changing what
    `getrusage` reports for the whole process, and without a reset it only moves when a trial exceeds
    every one before it; the memory guard's estimate covers the CPU before a candidate is built."""

    def __init__(self, device: torch.device):
        self.device = device
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def mb(self) -> float | None:
        if self.device.type == "cuda":
            return round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
        return None


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` says the device ran out of memory (torch.OutOfMemoryError, or the RuntimeErrors
    cuDNN / cuBLAS raise for it)."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("cuda out of memory" in text or "cudnn_status_not_enough_memory" in text
                                              or "cublas_status_alloc_failed" in text)


def release_device_memory() -> None:
    """Hand the memory a failed candidate held back, so that the next one starts with it free: cycles
    collected (a traceback's frames hold its activations), then CUDA's cached blocks returned. Call it
    after the exception's frames are gone (outside the `except` block)."""
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def compile_errors() -> tuple[type[BaseException], ...]:
    """What torch.compile raises when it cannot compile (no C++ compiler, an op inductor cannot lower)."""
    errors: list[type[BaseException]] = []
    with contextlib.suppress(ImportError):
        from torch._dynamo.exc import TorchDynamoException

        errors.append(TorchDynamoException)
    with contextlib.suppress(ImportError):
        from torch._inductor.exc import CppCompileError, InvalidCxxCompiler

        errors += [CppCompileError, InvalidCxxCompiler]
    return tuple(errors)


def run_compiled(model: nn.Module, train: Callable[[nn.Module], Any]) -> bool:
    """`train(torch.compile(model))` (the compiled module shares `model`'s parameters, so `model` is
    trained); when the compiler fails, a warning, `model`'s weights as they were, and `train(model)`
    eagerly. Returns whether the compiled run went through."""
    snapshot = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    try:
        # torch.compile of a module is a module (an OptimizedModule); torch types it as any callable.
        train(cast(nn.Module, torch.compile(model)))
        return True
    except compile_errors() as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        log.warning("training.final_compile: torch.compile failed (%s: %s); the final retrain runs eagerly instead",
                    type(exc).__name__, first)
    model.load_state_dict(snapshot)
    train(model)
    return False


__all__ = ["PRECISIONS", "DeviceRun", "PeakMemory", "backward_step", "canonical_precision", "check_precision",
           "compile_errors", "has_conv2d", "is_out_of_memory", "place", "release_device_memory", "run_compiled",
           "scaled_steps"]
