"""Which paths train the supernet at each step.

uniform  SPOS (Guo et al., 2020): one path per step, each decision drawn uniformly and independently.
fair     FairNAS (Chu et al., 2021), strict fairness: each step draws, for every decision, a random
         permutation of its choices and trains the paths made of the permutations' columns, their
         gradients summed before one optimiser step; so every candidate of every decision is trained
         exactly once per step. With decisions of unequal sizes the shorter permutations are
         extended by fresh uniform draws, so each choice is trained at least once per step.

Paths are drawn over the space's categorical decisions (`decisions` / `decode`), so any space that
has a supernet and expresses itself as decisions can use either.
"""

from __future__ import annotations

import numpy as np

from ...errors import ConfigError
from ...space.base import Genome, SearchSpace

SAMPLINGS = ("uniform", "fair")


class PathSampler:
    def __init__(self, space: SearchSpace, sampling: str = "uniform"):
        if sampling not in SAMPLINGS:
            raise ConfigError(f"supernet sampling must be one of {', '.join(SAMPLINGS)}, got {sampling!r}")
        try:
            self.sizes = np.array([int(n) for n in space.decisions()])
        except NotImplementedError:
            raise ConfigError(f"one-shot evaluation draws paths over categorical decisions; the {space.name!r} space "
                              "has none") from None
        self.space, self.sampling = space, sampling

    @property
    def paths_per_step(self) -> int:
        return 1 if self.sampling == "uniform" else int(self.sizes.max())

    def step(self, rng: np.random.Generator) -> list[Genome]:
        """The paths of one training step."""
        if self.sampling == "uniform":
            return [self.space.decode((rng.random(len(self.sizes)) * self.sizes).astype(np.int64).tolist())]
        width = self.paths_per_step
        columns = np.empty((len(self.sizes), width), dtype=np.int64)
        for i, n in enumerate(self.sizes):
            extra = rng.integers(n, size=width - n) if width > n else np.empty(0, dtype=np.int64)
            columns[i] = np.concatenate([rng.permutation(n), extra])
        return [self.space.decode(columns[:, k].tolist()) for k in range(width)]
