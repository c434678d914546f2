"""The whole search configuration: `SearchConfig` holds every section and checks how they fit
together (a Pareto strategy needs objectives, devices must suit the executor, ...)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SerializeAsAny, ValidationError, field_validator, model_validator

from ..errors import ConfigError, NasforgeError
from ..registry import EVALUATORS
from ..strategy.base import StrategyOptions
from ..strategy.factory import parse_options
from .costs import CONSTRAINT_MEASURES, METRICS, CostConfig, ScalarizeConfig
from .sections import (
    ONE_SHOT_REWARDS,
    BudgetConfig,
    DatasetConfig,
    EvaluationConfig,
    ExecutorConfig,
    FidelityConfig,
    PrescreenConfig,
    SpaceConfig,
    TrainingConfig,
    _Strict,
)


class SearchConfig(_Strict):
    dataset: DatasetConfig = DatasetConfig()
    space: SpaceConfig = SpaceConfig()
    strategy: SerializeAsAny[StrategyOptions] = Field(default_factory=lambda: parse_options("evolution"),
                                                      description="search strategy: a registered name (or module:Class) and its options")
    training: TrainingConfig = TrainingConfig()
    budget: BudgetConfig = BudgetConfig()
    fidelity: FidelityConfig = FidelityConfig()
    prescreen: PrescreenConfig = PrescreenConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    reward: Literal["auto", "accuracy", "precision", "recall", "f1", "auc", "average_precision", "neg_loss", "neg_rmse",
                    "neg_mae", "r2", "custom"] = Field(
        "auto", description="what the search maximises on the validation split: auto (accuracy; f1 for multilabel; neg_rmse "
        "for regression), accuracy, precision, recall, f1, auc, average_precision, neg_loss, neg_rmse, neg_mae, r2, or custom "
        "(Python API: reward=callable(y_true, y_score))")
    reward_direction: Literal["max", "min"] = Field("max", description="custom reward: whether the metric is maximised or minimised")
    evaluator: str = Field("auto", min_length=1, description="what trains and scores a candidate: auto (the built-in trainer; "
                           "language models for a corpus), training, functional (Python API: evaluate=fn(model, ctx)) or a "
                           "registered evaluator's name")
    loggers: tuple[Literal["tensorboard", "mlflow"], ...] = Field(
        (), description="write every trial's curve, metrics and genome, and the returned model, for tensorboard (RUN/tensorboard) "
        "and / or mlflow (its tracking URI, default a file store in RUN/mlruns); needs the extra of the same name")

    @field_validator("evaluator")
    @classmethod
    def _evaluator(cls, v: str) -> str:
        if v != "auto" and v not in EVALUATORS:
            raise ValueError(f"unknown evaluator {v!r}; known: auto, {', '.join(EVALUATORS.names())}")
        return v
    seed: int = Field(0, ge=0, le=2**31 - 1, description="random seed of the search")
    out: str = Field("runs/search", min_length=1, description="run directory (store, weights, exports)")
    keep_top: int = Field(5, ge=1, le=10000, description="trained weights kept for the best K trials")
    progress: bool = Field(True, description="show a progress bar")
    executor: ExecutorConfig = ExecutorConfig()
    objectives: tuple[str, ...] = Field((), description="objectives of a Pareto search, comma-separated: accuracy,params "
                                        "(name:min / name:max sets a direction; costs are minimised by default)",
                                        json_schema_extra={"flag_type": "str"})
    constraints: tuple[str, ...] = Field((), description="hard limit on a cost, checked before training: 'params<=20000', "
                                         "'latency_ms<=5' (also flops, size_bytes; <, <=, >, >=; k/M/G suffixes); on the "
                                         "command line, repeat --constraint for several",
                                         json_schema_extra={"flag": "constraint", "repeat": True})
    costs: CostConfig = CostConfig()
    scalarize: ScalarizeConfig = ScalarizeConfig()
    initial_genomes: tuple[str | list[Any] | dict[str, Any], ...] = Field(
        (), json_schema_extra={"flag": None}, description="genomes evaluated first, in place of the strategy's first choices "
        "(a design to improve on): each the path of a .json genome or the genome inline, as the store keeps it (layers space: "
        "a list of components)")

    @field_validator("objectives", mode="before")
    @classmethod
    def _objectives(cls, v: Any) -> Any:
        from ..objectives import Objective

        items = [p.strip() for p in v.split(",") if p.strip()] if isinstance(v, str) else v
        if not isinstance(items, (list, tuple)):
            return items
        for item in items:
            try:
                name = Objective.parse(str(item)).name
            except NasforgeError as exc:
                raise ValueError(str(exc)) from None
            if name not in METRICS:
                raise ValueError(f"unknown objective {name!r}; known: {', '.join(METRICS)}")
        return tuple(items)

    @field_validator("constraints", mode="before")
    @classmethod
    def _constraints(cls, v: Any) -> Any:
        from ..evaluate.constraints import Constraint

        items = [v] if isinstance(v, str) else v
        if not isinstance(items, (list, tuple)):
            return items
        for item in items:
            try:
                Constraint.parse(str(item), known=CONSTRAINT_MEASURES)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return tuple(items)

    @model_validator(mode="after")
    def _pareto(self) -> SearchConfig:
        if self.strategy.name == "nsga2" and len(self.objectives) < 2:
            raise ValueError("objectives: strategy nsga2 searches a Pareto front and needs two or more objectives, "
                             "e.g. --objectives accuracy,params")
        if self.training.cv_folds is not None and self.fidelity.name != "none":
            raise ValueError("training.cv_folds: successive halving continues one network per rung, not K folds; "
                             "use fidelity: none with cv_folds")
        if self.evaluation.name == "one-shot":
            self._one_shot_fits()
        self._devices_fit_executor()
        for field in ("final_ensemble", "final_seeds"):
            if getattr(self.training, field) > 1 and len(self.objectives) >= 2:
                raise ValueError(f"training.{field}: a search with several objectives returns its Pareto front, "
                                 "not one model to ensemble; drop one of them")
        return self

    def _one_shot_fits(self) -> None:
        e = self.evaluation
        if e.supernet_epochs == 0 and e.shared_steps == 0:
            raise ValueError("evaluation.supernet_epochs: an untrained supernet scores nothing; train it first "
                             "(supernet_epochs) or while searching (shared_steps, ENAS)")
        clashes = {
            "executor": (self.executor.name != "serial", "the shared weights live in the search's process; use executor serial"),
            "fidelity": (self.fidelity.name != "none", "a supernet path is scored, not trained for epochs; use fidelity none"),
            "training.early_stop": (self.training.early_stop != "none", "nothing is trained per candidate to stop early"),
            "training.inherit": (bool(self.training.inherit), "candidates share all weights already"),
            "objectives": (len(self.objectives) >= 2, "Pareto searches over a supernet are not available yet"),
            "constraints": (bool(self.constraints), "cost constraints over a supernet are not available yet"),
            "scalarize": (self.scalarize.name != "none", "scalarized rewards over a supernet are not available yet"),
            "evaluator": (self.evaluator not in ("auto", "training"), f"paths are scored with the supernet's shared weights, not by "
                          f"evaluator {self.evaluator!r} (Python API: evaluate=fn); use evaluator auto"),
            "reward": (self.reward not in ONE_SHOT_REWARDS, "paths are scored by class predictions; use one of "
                       f"{', '.join(ONE_SHOT_REWARDS)}"),
        }
        for field, (clash, why) in clashes.items():
            if clash:
                raise ValueError(f"{field}: with evaluation one-shot {why}")

    @field_validator("evaluation", mode="before")
    @classmethod
    def _evaluation_shorthand(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

    def _devices_fit_executor(self) -> None:
        device, executor = self.training.device, self.executor
        if executor.name in ("pool", "ray") and device.startswith("cuda:"):
            raise ValueError(f"training.device: {device} names one GPU, but the {executor.name} executor gives each trial a GPU "
                             "of its own (seen there as cuda:0); use cuda or auto")
        if executor.name == "ray" and device == "cuda" and executor.gpus_per_trial == 0:
            raise ValueError("training.device: cuda under the ray executor needs executor.gpus_per_trial > 0 (a Ray task "
                             "that asks for no GPU sees none)")
        if executor.name == "ray" and self.costs.device == "cuda" and executor.gpus_per_trial == 0:
            raise ValueError("costs.device: cuda under the ray executor needs executor.gpus_per_trial > 0 (a Ray task "
                             "that asks for no GPU sees none)")

    @field_validator("scalarize", mode="before")
    @classmethod
    def _scalarize_shorthand(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset_shorthand(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

    @field_validator("strategy", mode="before")
    @classmethod
    def _strategy(cls, v: Any) -> Any:
        # The options model comes from the registered strategy (its `Options`), so the schema is
        # open to user strategies; parse_config reports these errors with their field paths.
        try:
            return parse_options(v)
        except ValidationError as exc:
            raise ValueError("; ".join(error_lines(exc, "strategy"))) from None
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("executor", mode="before")
    @classmethod
    def _executor_shorthand(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v


def error_lines(exc: ValidationError, prefix: str = "") -> list[str]:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "") or "(top level)"
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{loc}: {msg}")
    return lines
