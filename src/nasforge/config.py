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
    name: str = Field("mnist1d", min_length=1, description="built-in name (digits, mnist1d), a .npz / .csv path, a folder of "
                      "class sub-folders of images, or SOURCE:PATH with SOURCE fsdd, images, rt-polarity, tinyshakespeare, charlm")
    val_fraction: float = Field(0.2, gt=0, lt=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    label_column: str = "label"
    layout: Literal["auto", "nchw", "nhw", "ncl", "nl"] = "auto"
    split_seed: int = 0
    split: Literal["upstream", "speaker"] = Field("upstream", description="fsdd: test on takes 0-4 (upstream) or on one speaker")
    held_out_speaker: str = Field("theo", min_length=1, description="fsdd: the test speaker of split 'speaker'")
    val_speaker: str | None = Field("auto", min_length=1, description="fsdd, split 'speaker': the validation speaker ('auto': the "
                                    "next one after the test speaker in sorted order); unset: a random fraction of the training speakers")
    augment: bool = Field(True, description="fsdd: random time shift and stretch of training spectrograms")
    band_norm: Literal["mean", "meanvar"] | None = Field(None, description="fsdd: per-recording normalisation of every mel "
                                                          "band over time ('mean': less its mean; 'meanvar': also over its std)")
    test_views: bool = Field(False, description="fsdd: the returned model averages its predictions over 9 copies of each "
                             "input, shifted in time and warped in frequency by -5, 0, +5%")
    image_size: int = Field(32, ge=4, le=1024, description="image folders: pictures are resized to this many pixels square")
    max_length: int | None = Field(None, ge=1, le=100000, description="text: tokens kept per sentence (default 64); "
                                   "language models: context length of training and scoring (default 128)")
    cache_dir: str | None = Field(None, min_length=1, description="fsdd: spectrogram cache (default $NASFORGE_CACHE or "
                                  "~/.cache/nasforge)")


class SpaceConfig(_Strict):
    name: Literal["layers", "cell", "sequence"] = Field("layers", description="layers: layer graphs (1-D/2-D CNNs); cell: "
                                                        "NAS-Bench-201 cells; sequence: token models (text, language models)")
    min_blocks: int = Field(2, ge=1, le=64)
    max_blocks: int = Field(6, ge=1, le=64)
    max_layers: int = Field(40, ge=1, le=256)
    channels: tuple[Annotated[int, Field(ge=1, le=4096)], ...] = Field((8, 16, 32, 64, 128), min_length=1)
    kernels: tuple[Annotated[int, Field(ge=1, le=31)], ...] = Field((3, 5, 7), min_length=1)
    dense_units: tuple[Annotated[int, Field(ge=1, le=65536)], ...] = Field((32, 64, 128, 256), min_length=1)
    dropout_rates: tuple[Annotated[float, Field(ge=0, lt=1)], ...] = Field((0.1, 0.2, 0.3, 0.5), min_length=1)
    activations: tuple[Literal["relu", "gelu", "silu", "tanh", "elu", "leaky_relu"], ...] = Field(("relu", "gelu", "silu"), min_length=1)
    max_skip_span: int = Field(6, ge=1, le=64)
    blocks: tuple[Literal["transformer", "rnn", "conv"], ...] = Field(("transformer", "rnn", "conv"), min_length=1,
                                                                      description="sequence space: block kinds mixed per layer")
    rnn_widths: tuple[Annotated[int, Field(ge=1, le=8192)], ...] = Field((64, 128, 256), min_length=1,
                                                                         description="sequence space: LSTM/GRU hidden widths")
    rnn_layers: tuple[Annotated[int, Field(ge=1, le=16)], ...] = Field((1, 2), min_length=1,
                                                                       description="sequence space: LSTM/GRU layer counts")
    ngrams: tuple[Annotated[int, Field(ge=0, le=8)], ...] = Field((0, 1, 2, 3), min_length=1,
                                                                description="sequence space (classifiers): n-gram bag orders; 0 = no bag")
    bag_dims: tuple[Annotated[int, Field(ge=1, le=8192)], ...] = Field((32, 64, 128), min_length=1,
                                                                       description="sequence space: n-gram bag widths")
    hparams: dict[Literal["lr", "weight_decay", "batch_size", "epochs"], tuple[float, ...]] = Field(
        default_factory=dict, description="training hyper-parameters searched with the architecture: name -> values")

    @model_validator(mode="after")
    def _blocks(self) -> SpaceConfig:
        if self.min_blocks > self.max_blocks:
            raise ValueError(f"min_blocks ({self.min_blocks}) must not exceed max_blocks ({self.max_blocks})")
        for name, values in self.hparams.items():
            if not values or any(v < 0 or (v == 0 and name != "weight_decay") for v in values):
                raise ValueError(f"hparams.{name}: needs one or more positive values")
            if name in ("batch_size", "epochs") and any(v != int(v) for v in values):
                raise ValueError(f"hparams.{name}: values must be whole numbers")
        return self


class TrainingConfig(_Strict):
    epochs: int = Field(5, ge=1, le=100000)
    batch_size: int = Field(128, ge=1, le=1 << 20)
    lr: float = Field(3e-3, gt=0, le=10)
    weight_decay: float = Field(1e-4, ge=0, le=10)
    cosine: bool = True
    trial_timeout: float | None = Field(None, gt=0, description="seconds one candidate may train")
    cpu_seconds: float | None = Field(None, gt=0, description="language models: train each candidate for this many "
                                      "CPU-seconds instead of `epochs` (equal training time; step counts depend on the machine); "
                                      "under fidelity: halving a rung of k epochs is k such budgets")
    final_epochs: int | None = Field(None, ge=1, le=100000, description="retrain the best genome this long at the end")
    final_data: Literal["train", "train+val"] = Field("train", description="what the final retrain trains on; train+val "
                                                      "adds the validation split once the search is over (needs final_epochs)")
    final_ensemble: int = Field(1, ge=1, le=100, description="the returned model averages the predicted probabilities of "
                                "the best N trials (their search-trained weights, or each retrained with final_epochs)")
    final_seeds: int = Field(1, ge=1, le=100, description="the returned network(s) are each retrained this many times from "
                             "different seeds (needs final_epochs) and their predicted probabilities averaged")
    inherit: bool | None = Field(None, description="children start from their parent's trained weights (Lamarckian); "
                                 "unset: on for trained classifiers, off for language models")
    finetune_epochs: int = Field(2, ge=1, le=100000, description="epochs of a child that inherited weights")
    early_stop: Literal["none", "median"] = Field("none", description="median stopping rule against earlier trials")
    early_stop_min_trials: int = Field(5, ge=1, description="trials needed at an epoch before the median rule applies")
    proxies: bool = Field(False, description="record zero-cost proxies (synflow, naswot) of every trial at initialisation")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto: the GPU a worker was given, else the CPU")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="classifiers: the training loss spreads this share of each "
                                   "target over all classes (validation loss and scores stay plain cross-entropy)")
    cv_folds: int | None = Field(None, ge=3, le=100, description="classifiers: score every candidate by the mean over K "
                                 "folds (the validation split and K-1 of the training split; by group where the data has groups, "
                                 "e.g. fsdd speakers with a val_speaker); K times the training; the trial keeps fold 1's weights")

    @model_validator(mode="after")
    def _final(self) -> TrainingConfig:
        if self.final_data != "train" and self.final_epochs is None:
            raise ValueError("final_data: train+val retrains the best genome, so it needs final_epochs")
        if self.final_seeds > 1 and self.final_epochs is None:
            raise ValueError("final_seeds: retrains from several seeds need final_epochs")
        if self.cv_folds is not None:
            if self.inherit:
                raise ValueError("inherit: with cv_folds a parent's weights were trained on rows other folds validate on; "
                                 "set inherit: false")
            if self.early_stop != "none":
                raise ValueError("early_stop: the median rule compares single validation curves, not cross-validated "
                                 "scores; drop it or cv_folds")
        return self


class FidelityConfig(_Strict):
    name: Literal["none", "halving"] = "none"
    min_epochs: int = Field(1, ge=1, le=100000, description="epochs of the lowest rung")
    eta: int = Field(3, ge=2, le=100, description="keep the top 1/eta of each rung")
    rungs: int = Field(3, ge=2, le=10, description="number of rungs; the top rung trains min_epochs * eta^(rungs-1)")


class EvaluationConfig(_Strict):
    """How a candidate is scored: trained on its own, or as a path of one weight-sharing supernet."""

    name: Literal["train", "one-shot"] = Field("train", description="train: each candidate trained on its own; one-shot: "
                                               "a supernet of the space is trained once and every candidate is scored as "
                                               "one of its paths (cell space; any strategy; SPOS with evolution, ENAS with "
                                               "reinforce and shared_steps)")
    supernet_epochs: int = Field(50, ge=0, le=100000, description="one-shot: epochs of supernet training before the search")
    sampling: Literal["uniform", "fair"] = Field("uniform", description="one-shot: paths per training step: uniform "
                                                 "(SPOS, one random path) or fair (FairNAS, every op of every edge once)")
    bn_batches: int = Field(4, ge=1, le=100000, description="one-shot: training batches a path's batch-norm statistics "
                            "are recomputed on before it is scored")
    top_k: int = Field(3, ge=1, le=1000, description="one-shot: the best K paths are retrained from scratch (final_epochs, "
                       "else epochs) and the best by validation is returned")
    shared_steps: int = Field(0, ge=0, le=1_000_000, description="one-shot (ENAS): the supernet is also trained this many "
                              "steps on the paths asked for, after every shared_every queries (0: frozen after supernet_epochs)")
    shared_every: int = Field(10, ge=1, le=1_000_000, description="one-shot (ENAS): queries between shared-weight training phases")


class PrescreenConfig(_Strict):
    proxy: Literal["none", "synflow", "naswot"] = "none"
    pool: int = Field(5, ge=2, le=10000, description="candidates scored per candidate trained")
    sample_pool: int | None = Field(None, ge=1, le=10000, description="candidates scored per random sample "
                                    "(initial populations, random search); unset: pool; 1: samples are not screened")
    cap: Literal["none", "params", "flops"] = Field("params", description="only candidates no larger than the pool's "
                                                    "median in this measure compete (proxies favour big, slow networks)")


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


class NSGA2Config(_Strict):
    name: Literal["nsga2"]
    population: int = Field(20, ge=2, le=100000)
    crossover_rate: float = Field(0.5, ge=0, le=1)
    mutation_rate: float = Field(1.0, ge=0, le=1)


class ReinforceConfig(_Strict):
    name: Literal["reinforce"]
    controller: Literal["independent", "lstm"] = "independent"
    lr: float | None = Field(None, gt=0, le=10, description="Adam learning rate of the policy (controller-specific default)")
    momentum: float = Field(0.9, ge=0, lt=1, description="moving-average baseline momentum")
    entropy: float = Field(1e-3, ge=0, le=10, description="entropy bonus weight")
    hidden: int = Field(32, ge=1, le=4096, description="LSTM controller width")


class LocalConfig(_Strict):
    name: Literal["local"]
    init: int = Field(10, ge=1, le=100000, description="random samples before climbing")
    neighbours: int = Field(30, ge=1, le=100000, description="neighbours tried around the incumbent before restarting")


class PredictorConfig(_Strict):
    name: Literal["predictor"]
    init: int = Field(20, ge=2, le=100000, description="random samples before the surrogate is trusted")
    parents: int = Field(10, ge=1, le=100000)
    pool: int = Field(0, ge=0, le=1_000_000, description="extra random mutants ranked by the surrogate per query (0: neighbours only)")
    kappa: float = Field(2.0, ge=0, le=100, description="exploration weight of the surrogate's uncertainty")


StrategyConfig = Annotated[
    RandomConfig | EvolutionConfig | GeneticConfig | NSGA2Config | ReinforceConfig | LocalConfig | PredictorConfig,
    Field(discriminator="name"),
]

# What a trained study can optimise, constrain or scalarize: the validation metrics and the cost
# measures of evaluate/cost.py (measured before training, so the only ones constraints may use).
COST_MEASURES = ("params", "flops", "size_bytes", "latency_ms")
# receptive_field: read off the genome (layers space), for constraints only.
CONSTRAINT_MEASURES = (*COST_MEASURES, "receptive_field")
METRICS = ("accuracy", "precision", "recall", "f1", "loss", "reward", "train_seconds", *COST_MEASURES)


class CostConfig(_Strict):
    """How cost measures are taken; params, flops, size_bytes and latency_ms are recorded for every trial."""

    batch_size: int = Field(1, ge=1, le=1 << 16, description="samples per timed forward pass of latency_ms")
    warmup: int = Field(3, ge=0, le=1000, description="untimed forward passes before latency is timed")
    repeats: int = Field(10, ge=1, le=10000, description="timed forward passes; latency_ms is their median")


class ScalarizeConfig(_Strict):
    """The reward strategies see: the plain reward, MnasNet's reward x (LAT/T)^w, or a weighted sum."""

    name: Literal["none", "mnasnet", "weighted"] = "none"
    measure: Literal["params", "flops", "size_bytes", "latency_ms"] = Field("latency_ms", description="mnasnet: the cost LAT")
    target: float | None = Field(None, gt=0, description="mnasnet: the target T of the cost")
    mode: Literal["soft", "hard"] = Field("soft", description="mnasnet: soft (alpha = beta = -0.07) or hard (alpha = 0, beta = -1)")
    alpha: float | None = Field(None, description="mnasnet: exponent when LAT <= T (overrides mode)")
    beta: float | None = Field(None, description="mnasnet: exponent when LAT > T (overrides mode)")
    weights: dict[str, float] = Field(default_factory=dict, description="weighted: name -> weight; 'reward' is the plain reward")

    @field_validator("weights", mode="before")
    @classmethod
    def _weights_text(cls, v: Any) -> Any:
        if not isinstance(v, str):
            return v
        out: dict[str, Any] = {}
        for item in filter(None, (part.strip() for part in v.split(","))):
            name, sep, weight = item.partition("=")
            if not sep:
                raise ValueError(f"{item!r}: expected NAME=WEIGHT")
            out[name.strip()] = weight.strip()
        return out

    @model_validator(mode="after")
    def _complete(self) -> ScalarizeConfig:
        if self.name == "mnasnet" and self.target is None:
            raise ValueError("target: the mnasnet reward needs a target for its measure (e.g. latency_ms 5)")
        if self.name == "weighted" and not self.weights:
            raise ValueError("weights: a weighted sum needs NAME=WEIGHT pairs, e.g. accuracy=1,params=-1e-6")
        known = [m for m in METRICS if m != "train_seconds"]  # the reward is computed before that is known
        unknown = sorted(set(self.weights) - set(known))
        if unknown:
            raise ValueError(f"weights: unknown name(s) {', '.join(unknown)}; known: {', '.join(known)}")
        return self


class ExecutorConfig(_Strict):
    """Where trials run. The search itself (strategy, seeds, store) does not depend on it."""

    name: Literal["serial", "pool", "ray"] = "serial"
    workers: int | None = Field(None, ge=1, le=4096, description="trials run at once; pool: one per core by default; "
                                "ray: cluster CPUs / cpus_per_trial by default")
    threads: int | None = Field(None, ge=1, le=1024, description="torch threads per pool worker (default cores / workers)")
    address: str | None = Field(None, min_length=1, description="ray: 'auto' or HOST:PORT of a running cluster; "
                                "unset starts a local Ray for the search")
    cpus_per_trial: float = Field(1.0, gt=0, le=4096, description="ray: CPUs (and torch threads) one trial holds")
    gpus_per_trial: float = Field(0.0, ge=0, le=64, description="ray: GPUs one trial holds; fractions share a device")
    ray_temp_dir: str | None = Field(None, min_length=1, description="ray: temp dir of a local Ray (default: a fresh one, removed after)")
    max_retries: int = Field(2, ge=0, le=100,
                             description="times a trial is run again after its worker died (killed, out of memory, node lost)")

    @model_validator(mode="before")
    @classmethod
    def _pool_for_workers(cls, v: Any) -> Any:
        # `workers: 4` alone means a pool of 4; one worker is the in-process default.
        if isinstance(v, dict) and "name" not in v and isinstance(v.get("workers"), int) and v["workers"] > 1:
            return {**v, "name": "pool"}
        return v

    @model_validator(mode="after")
    def _fits_executor(self) -> ExecutorConfig:
        if self.name == "serial" and self.workers not in (None, 1):
            raise ValueError(f"workers: the serial executor runs one trial at a time; use name: pool for {self.workers} workers")
        if self.name == "serial" and self.threads is not None:
            raise ValueError("threads: sets pool workers' threads; the serial executor trains with this process's torch threads")
        if self.name != "ray":
            given = [f for f in ("address", "ray_temp_dir") if getattr(self, f) is not None]
            given += [f for f, default in (("cpus_per_trial", 1.0), ("gpus_per_trial", 0.0)) if getattr(self, f) != default]
            if given:
                raise ValueError(f"{', '.join(given)}: only the ray executor uses this (executor is {self.name!r})")
        elif self.threads is not None:
            raise ValueError("threads: Ray tasks get cpus_per_trial threads each; set cpus_per_trial instead")
        return self


class SearchConfig(_Strict):
    dataset: DatasetConfig = DatasetConfig()
    space: SpaceConfig = SpaceConfig()
    strategy: StrategyConfig = EvolutionConfig(name="evolution")
    training: TrainingConfig = TrainingConfig()
    budget: BudgetConfig = BudgetConfig()
    fidelity: FidelityConfig = FidelityConfig()
    prescreen: PrescreenConfig = PrescreenConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    reward: Literal["accuracy", "precision", "recall", "f1", "neg_loss"] = "accuracy"
    seed: int = Field(0, ge=0, le=2**31 - 1)
    out: str = Field("runs/search", min_length=1)
    keep_top: int = Field(5, ge=1, le=10000, description="trained weights kept for the best K trials")
    progress: bool = True
    executor: ExecutorConfig = ExecutorConfig()
    objectives: tuple[str, ...] = Field((), description="objectives of a Pareto search, e.g. [accuracy, params]; "
                                        "name:min / name:max sets a direction (costs are minimised by default)")
    constraints: tuple[str, ...] = Field((), description="hard limits checked before training, e.g. ['params<=20000', 'latency_ms<=5']")
    costs: CostConfig = CostConfig()
    scalarize: ScalarizeConfig = ScalarizeConfig()
    initial_genomes: tuple[str | list[Any] | dict[str, Any], ...] = Field(
        (), description="genomes evaluated first, in place of the strategy's first choices (a design to improve on): each "
        "the path of a .json genome or the genome inline, as the store keeps it (layers space: a list of components)")

    @field_validator("objectives", mode="before")
    @classmethod
    def _objectives(cls, v: Any) -> Any:
        from .errors import NasforgeError
        from .report.pareto import Objective

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
        from .evaluate.constraints import Constraint

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
            "training.cv_folds": (self.training.cv_folds is not None, "paths are scored on the validation split, not by folds"),
            "training.early_stop": (self.training.early_stop != "none", "nothing is trained per candidate to stop early"),
            "training.inherit": (bool(self.training.inherit), "candidates share all weights already"),
            "objectives": (len(self.objectives) >= 2, "Pareto searches over a supernet are not available yet"),
            "constraints": (bool(self.constraints), "cost constraints over a supernet are not available yet"),
            "scalarize": (self.scalarize.name != "none", "scalarized rewards over a supernet are not available yet"),
        }
        for field, (clash, why) in clashes.items():
            if clash:
                raise ValueError(f"{field}: with evaluation one-shot {why}")

    @field_validator("evaluation", mode="before")
    @classmethod
    def _evaluation_shorthand(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

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
    def _strategy_shorthand(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

    @field_validator("executor", mode="before")
    @classmethod
    def _executor_shorthand(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v


# flag / keyword name -> dotted path in SearchConfig, with help text. Shared by the CLI and search().
FLAGS: dict[str, tuple[str, type, str]] = {
    "dataset": ("dataset.name", str, "built-in dataset (digits, mnist1d), a .npz/.csv path, an image folder, or "
                "fsdd:PATH, images:PATH, rt-polarity:PATH, tinyshakespeare:PATH, charlm:PATH"),
    "val_fraction": ("dataset.val_fraction", float, "fraction of training data held out for validation"),
    "test_fraction": ("dataset.test_fraction", float, "fraction held out for the final test (when the data has no test split)"),
    "label_column": ("dataset.label_column", str, "label column of a CSV dataset"),
    "layout": ("dataset.layout", str, "axis layout of .npz x: auto, nchw, nhw, ncl, nl (fsdd: nhw 2-D, ncl 1-D over time)"),
    "split": ("dataset.split", str, "fsdd test split: upstream (takes 0-4) or speaker (--held-out-speaker)"),
    "held_out_speaker": ("dataset.held_out_speaker", str, "fsdd: speaker whose recordings are the test split"),
    "val_speaker": ("dataset.val_speaker", str, "fsdd: validation speaker of split 'speaker' ('auto': the next after the test speaker)"),
    "augment": ("dataset.augment", bool, "fsdd: random time shift and stretch of training spectrograms"),
    "band_norm": ("dataset.band_norm", str, "fsdd: per-recording normalisation of every mel band: mean or meanvar"),
    "test_views": ("dataset.test_views", bool, "fsdd: the returned model averages over 9 shifted / warped copies of each input"),
    "image_size": ("dataset.image_size", int, "image folders: side in pixels pictures are resized to"),
    "max_length": ("dataset.max_length", int, "text: tokens per sentence; language models: context length"),
    "cache_dir": ("dataset.cache_dir", str, "fsdd: spectrogram cache folder"),
    "space": ("space.name", str, "search space: layers, cell or sequence"),
    "strategy": ("strategy.name", str, "random, evolution, genetic, reinforce, local, predictor, or nsga2 (Pareto search)"),
    "controller": ("strategy.controller", str, "REINFORCE policy: independent (logits per decision) or lstm"),
    "population": ("strategy.population", int, "population size (evolution, genetic, nsga2)"),
    "sample_size": ("strategy.sample_size", int, "tournament size of regularized evolution"),
    "selection": ("strategy.selection", str, "parent selection of the genetic algorithm: tournament, roulette, rank"),
    "tournament_size": ("strategy.tournament_size", int, "tournament size of the genetic algorithm"),
    "elitism": ("strategy.elitism", int, "members kept unchanged per generation (genetic)"),
    "crossover_rate": ("strategy.crossover_rate", float, "probability of crossover (genetic, nsga2)"),
    "mutation_rate": ("strategy.mutation_rate", float, "probability of mutation after crossover (genetic, nsga2)"),
    "trials": ("budget.trials", int, "number of trials"),
    "seconds": ("budget.seconds", float, "wall-clock budget in seconds"),
    "target": ("budget.target", float, "stop when the best reward reaches this"),
    "epochs": ("training.epochs", int, "training epochs per candidate"),
    "batch_size": ("training.batch_size", int, "training batch size"),
    "lr": ("training.lr", float, "AdamW learning rate"),
    "weight_decay": ("training.weight_decay", float, "AdamW weight decay"),
    "cosine": ("training.cosine", bool, "cosine learning-rate schedule"),
    "label_smoothing": ("training.label_smoothing", float, "classifiers: share of each training target spread over all classes"),
    "cv_folds": ("training.cv_folds", int, "classifiers: score candidates by K-fold cross-validation (by group where the "
                 "data has groups)"),
    "trial_timeout": ("training.trial_timeout", float, "seconds one candidate may train before it fails"),
    "final_epochs": ("training.final_epochs", int, "retrain the best genome this many epochs at the end"),
    "final_ensemble": ("training.final_ensemble", int, "return the mean prediction of the best N trials' networks"),
    "final_seeds": ("training.final_seeds", int, "retrain the returned network(s) from K seeds and average them (needs final_epochs)"),
    "inherit": ("training.inherit", bool, "children inherit their parent's trained weights and only fine-tune"),
    "finetune_epochs": ("training.finetune_epochs", int, "epochs of a child that inherited weights"),
    "early_stop": ("training.early_stop", str, "early stopping rule: none or median"),
    "proxies": ("training.proxies", bool, "record zero-cost proxies of every trial"),
    "device": ("training.device", str, "training device: auto (a GPU when there is one), cpu, cuda or cuda:N"),
    "fidelity": ("fidelity.name", str, "multi-fidelity scheduling: none or halving (successive halving)"),
    "min_epochs": ("fidelity.min_epochs", int, "epochs of the lowest successive-halving rung"),
    "eta": ("fidelity.eta", int, "successive halving keeps the top 1/eta of each rung"),
    "rungs": ("fidelity.rungs", int, "number of successive-halving rungs"),
    "evaluation": ("evaluation.name", str, "how candidates are scored: train (each on its own) or one-shot (as paths of "
                   "one trained supernet; cell space)"),
    "supernet_epochs": ("evaluation.supernet_epochs", int, "one-shot: epochs of supernet training before the search"),
    "sampling": ("evaluation.sampling", str, "one-shot: supernet training paths per step: uniform (SPOS) or fair (FairNAS)"),
    "bn_batches": ("evaluation.bn_batches", int, "one-shot: batches a path's batch-norm statistics are recomputed on"),
    "top_k": ("evaluation.top_k", int, "one-shot: best paths retrained from scratch; the best by validation is returned"),
    "shared_steps": ("evaluation.shared_steps", int, "one-shot (ENAS): supernet steps on the asked paths every shared_every queries"),
    "shared_every": ("evaluation.shared_every", int, "one-shot (ENAS): queries between shared-weight training phases"),
    "prescreen": ("prescreen.proxy", str, "zero-cost proxy that pre-screens candidates: none, synflow, naswot"),
    "prescreen_pool": ("prescreen.pool", int, "candidates scored by the proxy per candidate trained"),
    "prescreen_sample_pool": ("prescreen.sample_pool", int, "candidates scored per random sample; 1: samples unscreened"),
    "prescreen_cap": ("prescreen.cap", str, "pre-screen only among candidates no larger than the pool median: none, params, flops"),
    "min_blocks": ("space.min_blocks", int, "fewest blocks in a sampled network"),
    "max_blocks": ("space.max_blocks", int, "most blocks in a sampled network"),
    "max_layers": ("space.max_layers", int, "most components a genome may have"),
    "reward": ("reward", str, "accuracy, precision, recall, f1 or neg_loss (validation split)"),
    "seed": ("seed", int, "random seed of the search"),
    "out": ("out", str, "run directory (store, weights, exports)"),
    "keep_top": ("keep_top", int, "keep trained weights of the best K trials"),
    "progress": ("progress", bool, "show a progress bar"),
    "executor": ("executor.name", str, "where trials run: serial (this process), pool (local worker processes) or ray"),
    "workers": ("executor.workers", int, "trials run at once (pool: worker processes, default one per core)"),
    "threads": ("executor.threads", int, "torch threads per pool worker (default cores / workers)"),
    "address": ("executor.address", str, "Ray cluster to run on: auto or HOST:PORT (default: a local Ray started for the search)"),
    "cpus_per_trial": ("executor.cpus_per_trial", float, "CPUs one Ray trial holds"),
    "gpus_per_trial": ("executor.gpus_per_trial", float, "GPUs one Ray trial holds (fractions share a device)"),
    "ray_temp_dir": ("executor.ray_temp_dir", str, "temp dir of the local Ray (default: a fresh one, removed after)"),
    "max_retries": ("executor.max_retries", int, "times a trial is run again after its worker died"),
    "objectives": ("objectives", str, "objectives of a Pareto search, comma-separated: accuracy,params (name:min / name:max "
                   "sets a direction); known: " + ", ".join(METRICS)),
    "constraint": ("constraints", list, "hard limit on a cost, checked before training: 'params<=20000', 'latency_ms<=5' "
                   "(also flops, size_bytes; <, <=, >, >=; k/M/G suffixes); repeat the flag for several"),
    "scalarize": ("scalarize.name", str, "reward strategies see: none, mnasnet (reward x (LAT/T)^w) or weighted (a weighted sum)"),
    "scalarize_measure": ("scalarize.measure", str, "mnasnet: the cost LAT (latency_ms, params, flops, size_bytes)"),
    "scalarize_target": ("scalarize.target", float, "mnasnet: the target T of that cost"),
    "scalarize_mode": ("scalarize.mode", str, "mnasnet: soft (alpha = beta = -0.07) or hard (alpha = 0, beta = -1)"),
    "scalarize_weights": ("scalarize.weights", str, "weighted: NAME=WEIGHT,... e.g. accuracy=1,params=-1e-6"),
    "latency_batch": ("costs.batch_size", int, "samples per timed forward pass of latency_ms"),
    "latency_warmup": ("costs.warmup", int, "untimed forward passes before latency is timed"),
    "latency_repeats": ("costs.repeats", int, "timed forward passes; latency_ms is their median"),
}


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = data
    for key in parents:
        child = node.get(key)
        if isinstance(child, str) and key in ("dataset", "strategy", "executor", "scalarize", "evaluation"):
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
    unknown = sorted(set(options) - set(FLAGS))
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(FLAGS))}")
    for name in FLAGS:  # in table order, so the strategy's name is set before its options
        value = options.get(name)
        if value is None:
            continue
        if name in ("strategy", "executor"):
            current = data.get(name)
            current_name = current.get("name") if isinstance(current, dict) else current
            if current_name != value:
                # Options of another strategy (executor) do not carry over to the one the flag picks.
                data[name] = {"name": value}
        set_path(data, FLAGS[name][0], value)
    return parse_config(data)


def to_dict(config: SearchConfig) -> dict[str, Any]:
    return config.model_dump(mode="json")
