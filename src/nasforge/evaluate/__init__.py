from .evaluator import Evaluator, Result, TrainingEvaluator, count_params
from .metrics import REWARDS, classification_metrics
from .trainer import TrainingOptions, score, train

__all__ = [
    "REWARDS", "Evaluator", "Result", "TrainingEvaluator", "TrainingOptions", "classification_metrics", "count_params", "score", "train",
]
