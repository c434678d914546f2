"""The typed search configuration, read from YAML (safe_load) or built from flags / keyword arguments.

Every command-line flag is derived from a field of this schema (flags.py), so a YAML file can say
everything the flags can and every field is described once. Unknown or ill-typed fields raise
ConfigError naming the field.

The schema is split by section: sections.py (dataset, space, training, fidelity, prescreen,
budget, evaluation, executor), costs.py (measure names, cost measures, scalarized rewards), search.py
(SearchConfig, which holds them all); loading.py reads and builds configs.
"""

from .costs import CONSTRAINT_MEASURES, COST_MEASURES, METRICS, CostConfig, ScalarizeConfig
from .loading import build_config, flags, parse_config, read_yaml, to_dict
from .search import SearchConfig
from .sections import (
    BUILTIN_SPACES,
    ONE_SHOT_REWARDS,
    BudgetConfig,
    DatasetConfig,
    EvaluationConfig,
    ExecutorConfig,
    FidelityConfig,
    PrescreenConfig,
    SpaceConfig,
    TrainingConfig,
)

__all__ = [
    "BUILTIN_SPACES", "CONSTRAINT_MEASURES", "COST_MEASURES", "METRICS", "ONE_SHOT_REWARDS", "BudgetConfig", "CostConfig",
    "DatasetConfig", "EvaluationConfig", "ExecutorConfig", "FidelityConfig", "PrescreenConfig", "ScalarizeConfig",
    "SearchConfig", "SpaceConfig", "TrainingConfig", "build_config", "flags", "parse_config", "read_yaml", "to_dict",
]
