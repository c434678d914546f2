"""Search spaces. A new space is a model function asking its decisions (function.py, define-by-run),
or subclasses SearchSpace (base.py); either may be registered by name (`nasforge.register_space`, or
an entry point in the `nasforge.spaces` group; see registry.py), or given to `search(space=...)`."""

from ..registry import SPACES
from .base import Genome, SearchSpace
from .cell import CellGenome, CellSpace, parse_arch
from .choices import ChoiceGenome, Choices, Decision, DefinitionError
from .function import FunctionSpace
from .layers import Layer, LayerGenome, LayerGraphSpace, LayerSpaceOptions
from .plan import Plan, PlanNet, plan_to_source
from .resolve import make_space, space_from_record, space_record
from .sequence import SequenceGenome, SequenceSpace, SequenceSpaceOptions

__all__ = [
    "SPACES",
    "CellGenome",
    "ChoiceGenome",
    "Choices",
    "Decision",
    "DefinitionError",
    "FunctionSpace",
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
    "space_from_record",
    "space_record",
    "parse_arch",
    "plan_to_source",
]
