"""nasforge: neural architecture search that trains, scores and returns real PyTorch models.

    study = nasforge.search(dataset="digits", strategy="evolution", trials=20, epochs=5, out="runs/x")
    study.best, study.trials, study.final
    model = nasforge.load("model/")      # from `nasforge export`
"""

from .api import build_study, search
from .config import SearchConfig, parse_config
from .ensemble import Ensemble
from .errors import ConfigError, DataError, InvalidGenome, NasforgeError, StoreError  # noqa: F401 (public)
from .export import export_trial, load
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
from .space import SPACES, LayerGraphSpace, SearchSpace
from .store import Store
from .strategy import STRATEGIES, Candidate, Observation, Strategy
from .study import Study

__version__ = "0.1.0"

__all__ = [
    "Candidate",
    "DATA_SOURCES",
    "EVALUATORS",
    "EXECUTORS",
    "SPACES",
    "STRATEGIES",
    "ConfigError",
    "DataError",
    "Ensemble",
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
