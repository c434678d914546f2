"""A layer-graph genome and the bounds of the space it lives in.

`Layer` is one component: a kind (kinds.py) and its parameters as sorted name/value pairs, so it
hashes. `LayerGenome` is the ordered stack of components plus the training hyper-parameters searched
with it; `LayerSpaceOptions` bounds the space (how many blocks, which widths, kernels, rates...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...errors import InvalidGenome
from .kinds import ACTIVATIONS, COMPONENTS

HPARAMS = ("lr", "weight_decay", "batch_size", "epochs")


@dataclass(frozen=True)
class Layer:
    """One component: a kind and its parameters (sorted name/value pairs, so it hashes)."""

    kind: str
    params: tuple[tuple[str, Any], ...] = ()

    @staticmethod
    def of(kind: str, **params: Any) -> Layer:
        return Layer(kind, tuple(sorted(params.items())))

    def __getitem__(self, name: str) -> Any:
        for key, value in self.params:
            if key == name:
                return value
        raise KeyError(name)

    def replace(self, **changes: Any) -> Layer:
        return Layer.of(self.kind, **{**dict(self.params), **changes})

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, **dict(self.params)}


@dataclass(frozen=True)
class LayerGenome:
    layers: tuple[Layer, ...]
    # Training hyper-parameters searched with the architecture (sorted name/value pairs); empty
    # unless the space's options name domains for them.
    hparams: tuple[tuple[str, Any], ...] = ()

    def __len__(self) -> int:
        return len(self.layers)


@dataclass(frozen=True)
class LayerSpaceOptions:
    """Bounds of the space. Sampling draws `min_blocks..max_blocks` blocks (conv/norm/act motifs,
    pools, optional skips); mutation and crossover may go up to `max_layers` components."""

    min_blocks: int = 2
    max_blocks: int = 6
    max_layers: int = 40
    channels: tuple[int, ...] = (8, 16, 32, 64, 128)
    kernels: tuple[int, ...] = (3, 5, 7)
    dense_units: tuple[int, ...] = (32, 64, 128, 256)
    dropout_rates: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5)
    activations: tuple[str, ...] = ("relu", "gelu", "silu")
    max_skip_span: int = 6
    # Sampled genomes of 2-D inputs wider than STEM_SIDE start with stride-2 convolutions (variation.stem).
    stem: bool = True
    # name -> legal values, for name in HPARAMS; searched, mutated and inherited with the layers.
    hparams: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def multiscale_kernels(self) -> tuple[str, ...]:
        """Kernel sets of a multiscale block, as text ("1-3-5"): a pointwise branch plus growing
        prefixes of the odd kernels (odd only, so every branch keeps the map size and they concatenate)."""
        odd = sorted({k for k in self.kernels if k % 2} | {1})
        return tuple("-".join(map(str, odd[:n])) for n in range(2, len(odd) + 1)) or ("1",)

    def domains(self) -> dict[str, dict[str, tuple[Any, ...]]]:
        """Legal values of every parameter of every kind (in the encoding's order of kinds)."""
        return {name: COMPONENTS[name].domain(self) for name in sorted(COMPONENTS, key=lambda n: COMPONENTS[n].code)}

    def check(self) -> None:
        if not 1 <= self.min_blocks <= self.max_blocks:
            raise InvalidGenome("space: need 1 <= min_blocks <= max_blocks")
        if self.max_layers < 1 or self.max_skip_span < 1:
            raise InvalidGenome("space: max_layers and max_skip_span must be >= 1")
        for name in ("channels", "kernels", "dense_units", "dropout_rates", "activations"):
            if not getattr(self, name):
                raise InvalidGenome(f"space: {name} must not be empty")
        if any(k < 1 for k in self.kernels) or any(c < 1 for c in self.channels + self.dense_units):
            raise InvalidGenome("space: kernels, channels and dense_units must be positive")
        if any(not 0 <= r < 1 for r in self.dropout_rates):
            raise InvalidGenome("space: dropout_rates must lie in [0, 1)")
        bad = [name for name, values in self.hparams if name not in HPARAMS or not values]
        if bad:
            raise InvalidGenome(f"space: hparams {bad} must be among {HPARAMS} with at least one value each")
        unknown = [a for a in self.activations if a not in ACTIVATIONS]
        if unknown:
            raise InvalidGenome(f"space: unknown activation(s) {unknown}; known: {sorted(ACTIVATIONS)}")
