"""Search spaces. A new space subclasses SearchSpace (base.py) and is registered by name
(`nasforge.register_space`, or an entry point in the `nasforge.spaces` group; see registry.py)."""

from ..errors import ConfigError
from ..registry import SPACES
from .base import Genome, SearchSpace
from .cell import CellGenome, CellSpace, parse_arch
from .layers import Layer, LayerGenome, LayerGraphSpace, LayerSpaceOptions
from .plan import Plan, PlanNet, plan_to_source
from .sequence import SequenceGenome, SequenceSpace, SequenceSpaceOptions


def make_space(name: str, config: dict) -> SearchSpace:
    """Rebuild a space from `SearchSpace.config()` (as stored with studies and exports)."""
    factory = SPACES.get_or_error(name)
    if isinstance(factory, type) and issubclass(factory, SearchSpace):
        return factory.from_config(config)
    space = factory(**config)
    if not isinstance(space, SearchSpace):
        raise ConfigError(f"the search space factory registered as {name!r} returned {type(space).__name__}, not a SearchSpace")
    return space

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
