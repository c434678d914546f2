"""The typed search configuration, read from YAML (safe_load) or built from flags / keyword arguments.

Every command-line flag is a path into this model (FLAGS), so a YAML file can say everything the
flags can. Unknown or ill-typed fields raise ConfigError naming the field.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetConfig(_Strict):
    name: str = Field("mnist1d", min_length=1, description="built-in name (digits, mnist1d) or a .npz / .csv path")
    val_fraction: float = Field(0.2, gt=0, lt=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    label_column: str = "label"
    layout: Literal["auto", "nchw", "nhw", "ncl", "nl"] = "auto"
    split_seed: int = 0


class SpaceConfig(_Strict):
    name: Literal["layers"] = "layers"
    min_blocks: int = Field(2, ge=1, le=64)
    max_blocks: int = Field(6, ge=1, le=64)
    max_layers: int = Field(40, ge=1, le=256)
    channels: tuple[Annotated[int, Field(ge=1, le=4096)], ...] = Field((8, 16, 32, 64, 128), min_length=1)
    kernels: tuple[Annotated[int, Field(ge=1, le=31)], ...] = Field((3, 5, 7), min_length=1)
    dense_units: tuple[Annotated[int, Field(ge=1, le=65536)], ...] = Field((32, 64, 128, 256), min_length=1)
    dropout_rates: tuple[Annotated[float, Field(ge=0, lt=1)], ...] = Field((0.1, 0.2, 0.3, 0.5), min_length=1)
    activations: tuple[Literal["relu", "gelu", "silu", "tanh", "elu", "leaky_relu"], ...] = Field(("relu", "gelu", "silu"), min_length=1)
    max_skip_span: int = Field(6, ge=1, le=64)

    @model_validator(mode="after")
    def _blocks(self) -> SpaceConfig:
        if self.min_blocks > self.max_blocks:
            raise ValueError(f"min_blocks ({self.min_blocks}) must not exceed max_blocks ({self.max_blocks})")
        return self


class TrainingConfig(_Strict):
    epochs: int = Field(5, ge=1, le=100000)
    batch_size: int = Field(128, ge=1, le=1 << 20)
    lr: float = Field(3e-3, gt=0, le=10)
    weight_decay: float = Field(1e-4, ge=0, le=10)
    cosine: bool = True
    trial_timeout: float | None = Field(None, gt=0, description="seconds one candidate may train")
    final_epochs: int | None = Field(None, ge=1, le=100000, description="retrain the best genome this long at the end")


class BudgetConfig(_Strict):
    trials: int | None = Field(40, ge=1, le=10_000_000)
    seconds: float | None = Field(None, gt=0, description="wall-clock budget of the whole search")
    target: float | None = Field(None, description="stop once the best reward reaches this")

    @model_validator(mode="after")
    def _some_budget(self) -> BudgetConfig:
        if self.trials is None and self.seconds is None and self.target is None:
            raise ValueError("give at least one of trials, seconds or target, or the search never stops")
        return self


class RandomConfig(_Strict):
    name: Literal["random"]


class EvolutionConfig(_Strict):
    name: Literal["evolution"]
    population: int = Field(10, ge=1, le=100000)
    sample_size: int = Field(3, ge=1, le=100000)

    @model_validator(mode="after")
    def _sizes(self) -> EvolutionConfig:
        if self.sample_size > self.population:
            raise ValueError(f"sample_size ({self.sample_size}) must not exceed population ({self.population})")
        return self


class GeneticConfig(_Strict):
    name: Literal["genetic"]
    population: int = Field(10, ge=2, le=100000)
    selection: Literal["tournament", "roulette", "rank"] = "tournament"
    tournament_size: int = Field(3, ge=1, le=100000)
    elitism: int = Field(1, ge=0)
    crossover_rate: float = Field(0.5, ge=0, le=1)
    mutation_rate: float = Field(1.0, ge=0, le=1)

    @model_validator(mode="after")
    def _sizes(self) -> GeneticConfig:
        if self.elitism >= self.population:
            raise ValueError(f"elitism ({self.elitism}) must be smaller than population ({self.population})")
        return self


StrategyConfig = Annotated[RandomConfig | EvolutionConfig | GeneticConfig, Field(discriminator="name")]


class SearchConfig(_Strict):
    dataset: DatasetConfig = DatasetConfig()
    space: SpaceConfig = SpaceConfig()
    strategy: StrategyConfig = EvolutionConfig(name="evolution")
    training: TrainingConfig = TrainingConfig()
    budget: BudgetConfig = BudgetConfig()
    reward: Literal["accuracy", "precision", "recall", "f1", "neg_loss"] = "accuracy"
    seed: int = Field(0, ge=0, le=2**31 - 1)
    out: str = Field("runs/search", min_length=1)
    keep_top: int = Field(5, ge=1, le=10000, description="trained weights kept for the best K trials")
    progress: bool = True

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset_shorthand(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

    @field_validator("strategy", mode="before")
    @classmethod
    def _strategy_shorthand(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v


# flag / keyword name -> dotted path in SearchConfig, with help text. Shared by the CLI and search().
FLAGS: dict[str, tuple[str, type, str]] = {
    "dataset": ("dataset.name", str, "built-in dataset (digits, mnist1d) or a .npz/.csv path"),
    "val_fraction": ("dataset.val_fraction", float, "fraction of training data held out for validation"),
    "test_fraction": ("dataset.test_fraction", float, "fraction held out for the final test (when the data has no test split)"),
    "label_column": ("dataset.label_column", str, "label column of a CSV dataset"),
    "layout": ("dataset.layout", str, "axis layout of .npz x: auto, nchw, nhw, ncl, nl"),
    "strategy": ("strategy.name", str, "random, evolution or genetic"),
    "population": ("strategy.population", int, "population size (evolution, genetic)"),
    "sample_size": ("strategy.sample_size", int, "tournament size of regularized evolution"),
    "selection": ("strategy.selection", str, "parent selection of the genetic algorithm: tournament, roulette, rank"),
    "tournament_size": ("strategy.tournament_size", int, "tournament size of the genetic algorithm"),
    "elitism": ("strategy.elitism", int, "members kept unchanged per generation (genetic)"),
    "crossover_rate": ("strategy.crossover_rate", float, "probability of crossover (genetic)"),
    "mutation_rate": ("strategy.mutation_rate", float, "probability of mutation after crossover (genetic)"),
    "trials": ("budget.trials", int, "number of trials"),
    "seconds": ("budget.seconds", float, "wall-clock budget in seconds"),
    "target": ("budget.target", float, "stop when the best reward reaches this"),
    "epochs": ("training.epochs", int, "training epochs per candidate"),
    "batch_size": ("training.batch_size", int, "training batch size"),
    "lr": ("training.lr", float, "AdamW learning rate"),
    "weight_decay": ("training.weight_decay", float, "AdamW weight decay"),
    "cosine": ("training.cosine", bool, "cosine learning-rate schedule"),
    "trial_timeout": ("training.trial_timeout", float, "seconds one candidate may train before it fails"),
    "final_epochs": ("training.final_epochs", int, "retrain the best genome this many epochs at the end"),
    "min_blocks": ("space.min_blocks", int, "fewest blocks in a sampled network"),
    "max_blocks": ("space.max_blocks", int, "most blocks in a sampled network"),
    "max_layers": ("space.max_layers", int, "most components a genome may have"),
    "reward": ("reward", str, "accuracy, precision, recall, f1 or neg_loss (validation split)"),
    "seed": ("seed", int, "random seed of the search"),
    "out": ("out", str, "run directory (store, weights, exports)"),
    "keep_top": ("keep_top", int, "keep trained weights of the best K trials"),
    "progress": ("progress", bool, "show a progress bar"),
}


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = data
    for key in parents:
        child = node.get(key)
        if isinstance(child, str) and key in ("dataset", "strategy"):
            child = {"name": child}
        if not isinstance(child, dict):
            child = {}
        node[key] = child
        node = child
    node[leaf] = value


def _format(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        # Drop pydantic's union-tag segments (e.g. 'evolution') only where they are not real fields.
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        lines.append(f"{loc}: {msg}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def parse_config(data: Any) -> SearchConfig:
    """Validate a mapping into a SearchConfig; ConfigError names every bad field."""
    if not isinstance(data, dict):
        raise ConfigError(f"invalid configuration: expected a mapping of fields, got {type(data).__name__}")
    try:
        return SearchConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format(exc)) from None
    except (TypeError, ValueError, RecursionError) as exc:  # defensive: never let a traceback through
        raise ConfigError(f"invalid configuration: {exc}") from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of fields, got {type(data).__name__}")
    return data


def build_config(base: dict[str, Any] | None = None, **options: Any) -> SearchConfig:
    """A config from an optional mapping plus flag-style keyword options (None means 'not given')."""
    data: dict[str, Any] = copy.deepcopy(base or {})
    for name, value in options.items():
        if value is None:
            continue
        if name not in FLAGS:
            raise ConfigError(f"unknown option {name!r}; known: {', '.join(sorted(FLAGS))}")
        set_path(data, FLAGS[name][0], value)
    return parse_config(data)


def to_dict(config: SearchConfig) -> dict[str, Any]:
    return config.model_dump(mode="json")
