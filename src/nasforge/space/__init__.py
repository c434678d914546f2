"""Search spaces. A new space subclasses SearchSpace (base.py) and is added to SPACES."""

from .base import Genome, SearchSpace
from .cell import CellGenome, CellSpace, parse_arch
from .layers import Layer, LayerGenome, LayerGraphSpace, LayerSpaceOptions
from .plan import Plan, PlanNet, plan_to_source
from .sequence import SequenceGenome, SequenceSpace, SequenceSpaceOptions

SPACES: dict[str, type[SearchSpace]] = {"layers": LayerGraphSpace, "cell": CellSpace, "sequence": SequenceSpace}


def make_space(name: str, config: dict) -> SearchSpace:
    """Rebuild a space from `SearchSpace.config()` (as stored with studies and exports)."""
    if name not in SPACES:
        raise ValueError(f"unknown search space {name!r}; known: {sorted(SPACES)}")
    return SPACES[name].from_config(config)

__all__ = [
    "SPACES",
    "CellGenome",
    "CellSpace",
    "Genome",
    "Layer",
    "LayerGenome",
    "LayerGraphSpace",
    "LayerSpaceOptions",
    "Plan",
    "PlanNet",
    "SearchSpace",
    "SequenceGenome",
    "SequenceSpace",
    "SequenceSpaceOptions",
    "make_space",
    "parse_arch",
    "plan_to_source",
]
