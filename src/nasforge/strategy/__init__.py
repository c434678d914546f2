"""Search strategies behind one ask/tell interface (base.py). A new strategy subclasses Strategy
and is registered by name (`nasforge.register_strategy`, or an entry point in the
`nasforge.strategies` group; see registry.py); selection and other operators live in operators/."""

from ..registry import STRATEGIES
from .base import Candidate, Member, Observation, Strategy
from .evolution import RegularizedEvolution
from .genetic import GeneticAlgorithm
from .local import LocalSearch
from .nsga2 import NSGA2
from .predictor import PredictorEvolution
from .random import RandomSearch
from .reinforce import Reinforce

__all__ = [
    "NSGA2", "STRATEGIES", "Candidate", "GeneticAlgorithm", "LocalSearch", "Member", "Observation", "PredictorEvolution",
    "RandomSearch", "Reinforce", "RegularizedEvolution", "Strategy",
]
