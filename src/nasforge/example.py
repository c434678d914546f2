"""The example input a run keeps beside its store (`example.pt`), written when the run is created.

Exports trace TorchScript and ONNX with it and check them against PyTorch on it, so an export
never needs the data set again: data given as Python objects cannot be reloaded, and a user's data
file may have moved. It holds the first `EXAMPLE_SAMPLES` test inputs as the models saw them
(normalised features, or integer token ids), with their per-sample shape and dtype. Runs made
before it existed have none; export then reloads the data (`export.real_batch`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

EXAMPLE_FILE = "example.pt"
EXAMPLE_SAMPLES = 16


def save_example(run_dir: str | Path, x: torch.Tensor) -> Path:
    """Keep the first EXAMPLE_SAMPLES rows of `x` (inputs as the models see them) with the run."""
    x = x[:EXAMPLE_SAMPLES].detach().cpu().clone()
    # Features are float32 as in training; token ids stay integers (an embedding looks them up).
    if x.is_floating_point():
        x = x.float()
    path = Path(run_dir) / EXAMPLE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"x": x, "shape": list(x.shape[1:]), "dtype": str(x.dtype).removeprefix("torch.")}, tmp)
    tmp.replace(path)
    return path


def load_example(run_dir: str | Path, n: int | None = None) -> torch.Tensor | None:
    """The run's example input (at most `n` rows), or None for a run made before examples were kept."""
    path = Path(run_dir) / EXAMPLE_FILE
    if not path.exists():
        return None
    data: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    x = data["x"]
    return x[:n] if n is not None else x


def example_of(data: Any, seq_len: int | None = None) -> torch.Tensor:
    """Inputs of a loaded data set to keep as the example: its test split (a language model's first
    test windows of `seq_len` characters), else its validation or training split."""
    from .data.text import CharCorpus

    if isinstance(data, CharCorpus):
        from .evaluate.language_model import windows

        return windows(data.test, seq_len or 128)[0][:EXAMPLE_SAMPLES]
    for split in ("x_test", "x_val", "x_train"):
        x = getattr(data, split, None)
        if isinstance(x, torch.Tensor) and len(x):
            return x[:EXAMPLE_SAMPLES]
    if hasattr(data, "batches"):  # streamed (data/streamed.py): the first test items, standardised as in training
        batches = data.batches("test", EXAMPLE_SAMPLES)
        try:
            return next(batches.epoch())[0]
        finally:
            batches.close()
    raise ValueError(f"{type(data).__name__} has no input tensor to keep as an example")


__all__ = ["EXAMPLE_FILE", "EXAMPLE_SAMPLES", "example_of", "load_example", "save_example"]
