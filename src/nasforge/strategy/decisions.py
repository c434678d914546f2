"""Helpers for strategies that see a space as a sequence of categorical decisions."""

from __future__ import annotations

from ..errors import ConfigError
from ..space.base import Genome, SearchSpace
from .base import Candidate


def decision_sizes(space: SearchSpace, strategy: str) -> list[int]:
    """The space's decisions, or a ConfigError saying which strategy needs them."""
    try:
        sizes = [int(n) for n in space.decisions()]
    except NotImplementedError:
        raise ConfigError(f"strategy {strategy!r} needs a space that expresses itself as categorical decisions; "
                          f"the {space.name!r} space does not (it lacks decisions/encode/decode)") from None
    if not sizes or any(n < 1 for n in sizes):
        raise ConfigError(f"space {space.name!r}: decisions must be a non-empty list of positive choice counts, got {sizes}")
    return sizes


def choices_of(space: SearchSpace, candidate: Candidate) -> list[int]:
    """The choices a candidate was sampled with; after a resume (info is not stored) its encoding,
    where a decision that did not occur (-1) reads as its first option: `space.occurred` tells the
    strategy to learn nothing from it."""
    choices = candidate.info.get("choices")
    return list(choices) if choices is not None else [max(int(c), 0) for c in space.encode(candidate.genome)]


def encode_or_none(space: SearchSpace, genome: Genome) -> list[int] | None:
    try:
        return space.encode(genome)
    except Exception:  # a genome outside the bounded decision form (e.g. too deep) simply has none
        return None
