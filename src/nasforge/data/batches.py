"""Where training and scoring batches come from: tensors in memory, or a DataLoader that streams.

`TensorBatches` (the fast path, data that fits in memory): every batch is an index slice of the
split's tensors; no per-sample Python, no worker processes. On a GPU the splits are copied there once
per process (Dataset.on_device) when they take at most DEVICE_DATA_SHARE of its free memory, and
slices are taken on the GPU; a split too large for that stays in host memory and each batch is
gathered there, pinned, and copied without blocking (the next batch is gathered while the GPU works).
`LoaderBatches` (data that does not fit): a torch DataLoader reads `batch_size` items at a time,
in `workers` processes, into pinned memory when the device is a GPU, copied to it without blocking;
only a few batches are ever in memory. Inputs are standardised on the device with the training
split's statistics. Both draw the training order from a generator seeded by the trial, so a trial
is the same on every run. A shuffled (training) epoch skips a last batch of a single sample: batch
norm cannot train on one value per channel (a table's features are channels of length 1), and the
next epoch's order puts that sample elsewhere.
"""

from __future__ import annotations

import multiprocessing
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence, Sized
from typing import cast

import torch


class Batches(ABC):
    """One split, batched: `epoch()` yields (inputs, targets) on the device, in a new seeded order
    each call when shuffled, in order otherwise."""

    @abstractmethod
    def __len__(self) -> int:
        """Samples in the split."""

    @abstractmethod
    def epoch(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of one pass over the split."""

    def close(self) -> None:  # noqa: B027 - only loaders with worker processes have something to stop
        """Stop whatever the batches hold (DataLoader workers)."""


# Share of a GPU's free memory that a process's in-memory splits may take when copied there whole.
DEVICE_DATA_SHARE = 0.25


def indexed_device(device: torch.device | str) -> torch.device:
    """`device` with its index (cuda -> cuda:N, the current GPU), so that it compares equal to the
    device of the tensors on it: torch.device("cuda") != torch.device("cuda:0")."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def fits_on_device(nbytes: int, device: torch.device | str) -> bool:
    """Whether `nbytes` of data may live on `device` for the whole search: always on the CPU (it is
    there already) and on devices without their own memory figure; on CUDA up to DEVICE_DATA_SHARE
    of the memory free now, leaving the rest to the networks."""
    device = indexed_device(device)
    if device.type != "cuda":
        return True
    free, _total = torch.cuda.mem_get_info(device)
    return nbytes <= DEVICE_DATA_SHARE * free


class TensorBatches(Batches):
    """Index slices of (x, y). `resident` (the default): both are moved to `device` here (a no-op when
    they are there already, as on the CPU) and sliced there. Not resident: they stay where they are
    and each batch is gathered there and copied to `device`, through pinned memory to a GPU."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device | str = "cpu",
                 seed: int | None = None, resident: bool = True):
        device = indexed_device(device)
        if resident:
            x, y = x.to(device), y.to(device)  # once per candidate, not per batch; no-ops where they are already
        self.x, self.y = x, y
        self.batch_size, self.device = batch_size, device
        self.copied = x.device != device  # each batch crosses to the device
        self.pin = self.copied and device.type == "cuda"
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None

    def __len__(self) -> int:
        return len(self.x)

    def _to_device(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.copied:
            return x, y
        if self.pin:
            x, y = x.pin_memory(), y.pin_memory()
        return x.to(self.device, non_blocking=self.pin), y.to(self.device, non_blocking=self.pin)

    def epoch(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.generator is None:
            for i in range(0, len(self.x), self.batch_size):
                yield self._to_device(self.x[i : i + self.batch_size], self.y[i : i + self.batch_size])
            return
        # Drawn on the CPU whatever the device, so that a trial sees the same order everywhere; moved
        # to where the data is once per epoch, not once per batch.
        order = torch.randperm(len(self.x), generator=self.generator).to(self.x.device)
        for i in range(0, len(self.x), self.batch_size):
            idx = order[i : i + self.batch_size]
            if len(idx) == 1 and len(self.x) > 1:
                break  # see the module docstring
            yield self._to_device(self.x[idx], self.y[idx])


class LoaderBatches(Batches):
    """A map-style dataset of (input, target) items through a DataLoader. `mean` / `std` (per input
    channel) standardise each batch on the device."""

    def __init__(self, dataset: torch.utils.data.Dataset, batch_size: int, device: torch.device | str = "cpu",
                 seed: int | None = None, workers: int = 0, mean: Sequence[float] = (), std: Sequence[float] = ()):
        self.device = torch.device(device)
        self.dataset = dataset
        # Map-style datasets have a length; torch's Dataset type does not declare it.
        self._sized = cast(Sized, dataset)
        # A pool executor's workers are daemonic processes, which may not start processes of their own:
        # there the items are read in the worker itself.
        workers = 0 if multiprocessing.current_process().daemon else workers
        sampler: torch.utils.data.Sampler = (
            torch.utils.data.RandomSampler(self._sized, generator=torch.Generator().manual_seed(seed)) if seed is not None
            else torch.utils.data.SequentialSampler(self._sized))
        self.pin = self.device.type == "cuda"
        self.shuffled = seed is not None
        self.loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                                                  pin_memory=self.pin, persistent_workers=workers > 0)
        if len(mean) != len(std):
            raise ValueError(f"mean and std need one value per input channel each, got {len(mean)} and {len(std)}")
        # (mean, std) on the device, or None: no standardisation.
        self.scale = (torch.tensor(list(mean), dtype=torch.float32, device=self.device),
                      torch.tensor(list(std), dtype=torch.float32, device=self.device)) if len(mean) else None

    def __len__(self) -> int:
        return len(self._sized)

    def epoch(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.loader:
            if self.shuffled and len(y) == 1 and len(self) > 1:
                break  # see the module docstring
            x = x.to(self.device, non_blocking=self.pin)
            y = y.to(self.device, non_blocking=self.pin)
            if self.scale is not None:
                shape = (1, -1) + (1,) * (x.dim() - 2)
                x = (x - self.scale[0].view(shape)) / self.scale[1].view(shape)
            yield x, y

    def close(self) -> None:
        # Persistent workers stop with their iterator; dropping the loader drops it.
        self.loader = None  # type: ignore[assignment]
