"""Search strategies behind one ask/tell interface (base.py). A new strategy subclasses Strategy
and is added to STRATEGIES; selection and other operators live in operators/."""

from .base import Candidate, Member, Strategy
from .evolution import RegularizedEvolution
from .genetic import GeneticAlgorithm
from .random import RandomSearch

STRATEGIES: dict[str, type[Strategy]] = {
    "random": RandomSearch,
    "evolution": RegularizedEvolution,
    "genetic": GeneticAlgorithm,
}

__all__ = ["STRATEGIES", "Candidate", "GeneticAlgorithm", "Member", "RandomSearch", "RegularizedEvolution", "Strategy"]
