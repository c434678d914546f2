"""nasforge: neural architecture search that trains, scores and returns real PyTorch models.

    study = nasforge.search(dataset="digits", strategy="evolution", trials=20, epochs=5, out="runs/x")
    study = nasforge.search(data=(x, y), reward="neg_rmse", trials=20)      # your own arrays / Datasets
    study = nasforge.search(data=dataset, evaluate=my_training, trials=20)  # your own training loop
    study.best, study.trials, study.final
    model = nasforge.load("model/")      # from `nasforge export`
"""

from .api import build_study, search
from .callbacks import Callback, EpochInfo
from .config import SearchConfig, parse_config
from .data.images import ImageFolder
from .ensemble import Ensemble
from .errors import ConfigError, DataError, InvalidGenome, NasforgeError, StoreError, TrialFailure, TrialPruned  # noqa: F401
from .evaluate.functional import Context
from .export import export_trial
from .exported import load
from .registry import (
    DATA_SOURCES,
    EVALUATORS,
    EXECUTORS,
    register_data_source,
    register_evaluator,
    register_executor,
    register_space,
    register_strategy,
)
from .space import SPACES, Choices, FunctionSpace, LayerGraphSpace, SearchSpace
from .store import Store
from .strategy import STRATEGIES, Candidate, Observation, Strategy
from .study import Study
from .usercode import UserObjects

__version__ = "0.1.0"

__all__ = [
    "Callback",
    "Candidate",
    "Context",
    "EpochInfo",
    "ImageFolder",
    "TrialFailure",
    "TrialPruned",
    "UserObjects",
    "DATA_SOURCES",
    "EVALUATORS",
    "EXECUTORS",
    "SPACES",
    "STRATEGIES",
    "Choices",
    "ConfigError",
    "DataError",
    "Ensemble",
    "FunctionSpace",
    "InvalidGenome",
    "LayerGraphSpace",
    "NasforgeError",
    "Observation",
    "SearchConfig",
    "SearchSpace",
    "Store",
    "Strategy",
    "Study",
    "build_study",
    "export_trial",
    "load",
    "parse_config",
    "register_data_source",
    "register_evaluator",
    "register_executor",
    "register_space",
    "register_strategy",
    "search",
]
