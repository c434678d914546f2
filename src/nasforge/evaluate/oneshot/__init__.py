"""One-shot (weight-sharing) evaluation: a supernet trained once scores every candidate as a path.

sampling.py   which paths train the supernet at each step (SPOS uniform, FairNAS fair)
training.py   supernet training with an epoch checkpoint that a killed run resumes from
scoring.py    one path's validation score with the shared weights (batch-norm handling)
evaluator.py  OneShotEvaluator: the Evaluator contract over a trained supernet
enas.py       EnasEvaluator: shared weights trained between the controller's queries (ENAS)
"""

from .evaluator import OneShotEvaluator
from .sampling import PathSampler
from .scoring import PathScorer, ScoringOptions
from .training import SupernetError, SupernetOptions, train_supernet

__all__ = ["OneShotEvaluator", "PathSampler", "PathScorer", "ScoringOptions", "SupernetError", "SupernetOptions",
           "train_supernet"]
