"""The supernet contract: one network that holds every architecture of a space, each a path.

A space that supports weight sharing returns one from `SearchSpace.supernet()`. The supernet maps
a genome to its path (one candidate per MixedOp label), runs the active path in `forward`, and
`extract`s a path as the space's own standalone network (`space.build(genome)`, the class that
export and load know) with the shared weights copied in.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from ..base import Genome, SearchSpace
from .mixed import activate, choices_of, path_parameters, path_state_dict


class Supernet(nn.Module, ABC):
    def __init__(self, space: SearchSpace):
        super().__init__()
        self.space = space

    @abstractmethod
    def path(self, genome: Genome) -> dict[str, str]:
        """The genome as a path: MixedOp label -> candidate name."""

    def standalone_key(self, key: str) -> str:
        """The key in the standalone network's state_dict of a path tensor whose key is `key` in the
        collapsed form of `mixed.path_state_dict`; the identity where the space builds its networks
        with the supernet's module names (define-by-run spaces)."""
        return key

    def choices(self) -> dict[str, tuple[str, ...]]:
        return choices_of(self)

    def activate(self, genome: Genome) -> None:
        activate(self, self.path(genome))

    def path_state_dict(self, genome: Genome) -> dict[str, torch.Tensor]:
        """The genome's tensors (shared weights and current batch-norm statistics) under the keys of
        its standalone network."""
        self.activate(genome)
        return {self.standalone_key(k): v for k, v in path_state_dict(self).items()}

    def parameters_of(self, genome: Genome) -> int:
        self.activate(genome)
        return path_parameters(self)

    def extract(self, genome: Genome) -> nn.Module:
        """The genome's standalone network (`space.build`) holding copies of the shared weights;
        it computes what the supernet computes on this path (in eval mode, the same statistics)."""
        state = self.path_state_dict(genome)
        net = self.space.build(genome)
        net.load_state_dict(state)
        return net
