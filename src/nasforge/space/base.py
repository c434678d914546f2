"""The contract every search space fulfils.

A genome is plain, immutable, hashable data. It crosses process boundaries unchanged and its
canonical JSON is the store's key for deduplication. The space owns everything that needs to know
what a genome means: sampling, variation, repair, building a network, and (for strategies that
learn over decisions) an encoding as a sequence of categorical choices.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from typing import Any, Generic, TypeVar

import numpy as np
from torch import nn

Genome = Hashable
# A space's own genome type: `class CellSpace(SearchSpace[CellGenome])` takes and returns CellGenomes.
# Code that handles any space (strategies, the study) sees `SearchSpace`, whose genomes are opaque.
G = TypeVar("G", bound=Hashable)


class SearchSpace(ABC, Generic[G]):
    """A set of architectures for one task (input shape and class count are fixed at construction)."""

    name: str = "base"

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> G:
        """A random, valid genome."""

    @abstractmethod
    def mutate(self, genome: G, rng: np.random.Generator) -> tuple[G, str]:
        """A valid variant of `genome` and the name of the operator that made it."""

    @abstractmethod
    def crossover(self, a: G, b: G, rng: np.random.Generator) -> G:
        """A valid child that mixes the two parents."""

    @abstractmethod
    def build(self, genome: G) -> nn.Module:
        """A freshly initialised network for the space's task."""

    @abstractmethod
    def to_json(self, genome: G) -> Any:
        """JSON-serialisable form of the genome; `from_json(to_json(g)) == g`."""

    @abstractmethod
    def from_json(self, data: Any) -> G:
        """Inverse of `to_json`; raises InvalidGenome on malformed input."""

    def describe(self, genome: G) -> str:
        """A short human-readable summary, used in progress lines and leaderboards."""
        return json.dumps(self.to_json(genome), separators=(",", ":"))

    def refusal(self, genome: G) -> str | None:
        """Why a genome a strategy built itself (local search's neighbours, decoded choices, a config's
        initial genomes) may not be tried, or None: every genome of the space may, unless a wrapper
        (constraints) narrows it."""
        return None

    def admits(self, genome: G) -> bool:
        return self.refusal(genome) is None

    def key(self, genome: G) -> str:
        """Stable identity of a genome across processes and runs."""
        canonical = json.dumps(self.to_json(genome), sort_keys=True, separators=(",", ":"))
        return hashlib.sha1(canonical.encode()).hexdigest()

    def config(self) -> dict[str, Any]:
        """Everything needed to reconstruct this space (stored beside exported models)."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SearchSpace:
        """Inverse of `config()`."""
        return cls(**config)

    # -- optional: the space as a sequence of categorical decisions ---------------------------
    # Strategies that learn over decisions (policy gradient, surrogate models) need these; a space
    # that cannot express itself this way keeps the defaults and those strategies refuse it.
    # A space whose decisions depend on each other (a define-by-run space: `kernel3` exists only when
    # depth is 4) encodes a decision that does not occur in a genome as -1, and says which occur with
    # `occurred`; strategies learn nothing about a decision that did not occur.
    def decisions(self) -> list[int]:
        """Number of choices of each decision, in order."""
        raise NotImplementedError(f"the {self.name!r} space does not express itself as categorical decisions")

    def encode(self, genome: G) -> list[int]:
        """The choices (one per decision) that `decode` turns back into `genome`."""
        raise NotImplementedError(f"the {self.name!r} space does not express itself as categorical decisions")

    def decode(self, choices: Sequence[int]) -> G:
        """A valid genome from one choice per decision (repaired where the space repairs)."""
        raise NotImplementedError(f"the {self.name!r} space does not express itself as categorical decisions")

    def occurred(self, genome: G) -> list[bool] | None:
        """Which decisions occur in `genome` (`encode` gives -1 for the others); None: all of them,
        as in every space whose decisions do not depend on each other."""
        return None

    def decision_features(self, choices: np.ndarray) -> np.ndarray:
        """Numeric features of a batch of choice vectors (n x decisions) for surrogate models:
        one-hot per decision by default; spaces may add structure (e.g. the cell's paths)."""
        choices = np.asarray(choices, dtype=np.int64)
        sizes = self.decisions()
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        out = np.zeros((len(choices), int(sum(sizes))))
        rows = np.repeat(np.arange(len(choices)), len(sizes))
        out[rows, (choices + offsets).ravel()] = 1.0
        return out

    # -- optional: weight sharing --------------------------------------------------------------
    def supernet(self) -> nn.Module:
        """One network holding every genome of the space as a path (space/supernet/: a Supernet, whose
        `extract(genome)` is `build(genome)` with the shared weights); one-shot evaluation needs it."""
        raise NotImplementedError(f"the {self.name!r} space has no supernet (weight sharing); the cell space has one, and so "
                                  "does a model function whose decisions are all c.module")

    # -- optional: what evaluation needs to know beyond the network ----------------------------
    def module_map(self, parent: G, child: G) -> dict[str, str] | None:
        """Which parent module each child module corresponds to, for weight inheritance.
        None means 'modules of the same name correspond' (spaces with fixed module names)."""
        return None

    def receptive_field(self, genome: G) -> int | None:
        """Input positions one position of the last feature map sees (before global pooling); None
        where the space has no such notion. A constraint on it (`receptive_field>=51`) keeps only
        networks whose last convolutions see the whole input."""
        return None

    def training_overrides(self, genome: G) -> dict[str, Any]:
        """Training hyper-parameters the genome itself carries (lr, weight_decay, batch_size, epochs)."""
        return {}
