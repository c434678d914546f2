"""Search strategies behind one ask/tell interface (base.py). A new strategy subclasses Strategy
and is added to STRATEGIES; selection and other operators live in operators/."""

from .base import Candidate, Member, Strategy
from .evolution import RegularizedEvolution
from .genetic import GeneticAlgorithm
from .local import LocalSearch
from .nsga2 import NSGA2
from .predictor import PredictorEvolution
from .random import RandomSearch
from .reinforce import Reinforce

STRATEGIES: dict[str, type[Strategy]] = {
    "random": RandomSearch,
    "evolution": RegularizedEvolution,
    "genetic": GeneticAlgorithm,
    "reinforce": Reinforce,
    "local": LocalSearch,
    "predictor": PredictorEvolution,
    "nsga2": NSGA2,
}

__all__ = [
    "NSGA2", "STRATEGIES", "Candidate", "GeneticAlgorithm", "LocalSearch", "Member", "PredictorEvolution", "RandomSearch", "Reinforce",
    "RegularizedEvolution", "Strategy",
]
