from .cost import count_params
from .evaluator import Evaluator, Result
from .metrics import REWARDS, classification_metrics
from .trainer import TrainingOptions, score, train
from .training import TrainingEvaluator

__all__ = [
    "REWARDS", "Evaluator", "Result", "TrainingEvaluator", "TrainingOptions", "classification_metrics", "count_params", "score", "train",
]
