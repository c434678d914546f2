"""The typed search configuration, read from YAML (safe_load) or built from flags / keyword arguments.

Every command-line flag is derived from a field of this schema (flags.py), so a YAML file can say
everything the flags can and every field is described once. Unknown or ill-typed fields raise
ConfigError naming the field.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_validator, model_validator

from .errors import ConfigError
from .flags import Flag, derive, set_path
from .registry import EXECUTORS, SPACES, STRATEGIES
from .strategy.base import StrategyOptions
from .strategy.factory import options_model, parse_options


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetConfig(_Strict):
    name: str = Field("mnist1d", min_length=1, description="built-in name (digits, mnist1d), a .npz / .csv path, a folder of "
                      "class sub-folders of images, or SOURCE:PATH with SOURCE fsdd, images, rt-polarity, tinyshakespeare, charlm")
    val_fraction: float = Field(0.2, gt=0, lt=1, description="fraction of training data held out for validation")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="fraction held out for the final test (when the data has no test split)")
    label_column: str = Field("label", description="label column of a CSV dataset")
    layout: Literal["auto", "nchw", "nhw", "ncl", "nl", "nf"] = Field(
        "auto", description="axis layout of x: auto, nchw, nhw, ncl, nl (N x L signals: the default for a 2-D .npz x) or nf "
        "(N x F features, each a channel: the default for CSV files and arrays given in Python); fsdd: nhw 2-D, ncl 1-D over time")
    split_seed: int = Field(0, description="seed of the random validation / test split")
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
    task: Literal["auto", "classification", "multilabel", "regression"] = Field(
        "auto", description="what the targets are: auto (inferred: labels, 0/1 label columns, or numbers), classification, "
        "multilabel or regression; sets the head size, default loss, metrics and reward")
    stream: bool | None = Field(None, description="image folders and torch Datasets: read a batch at a time from disk (true), "
                                "all into memory (false), or streamed only when all of it would take more than memory_mb (unset)")
    memory_mb: float = Field(1024, gt=0, description="data larger than this (as float32) is streamed instead of held in memory")
    workers: int = Field(0, ge=0, le=256, json_schema_extra={"flag": "data_workers"},
                         description="streamed data: DataLoader worker processes reading and decoding items (0: the training process)")


# The spaces that read their options from the fields below (the rest take `function` / `options`).
BUILTIN_SPACES = ("layers", "cell", "sequence")


class SpaceConfig(_Strict):
    name: str = Field("layers", min_length=1, description="search space: layers (layer graphs: 1-D/2-D CNNs), cell "
                      "(NAS-Bench-201 cells), sequence (token models: text, language models), a name registered with "
                      "nasforge.register_space, or module:qualname of your own model function f(c) -> nn.Module "
                      "(or SearchSpace class)")
    function: str | None = Field(None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_<][\w.<>]*$", json_schema_extra={"flag": None},
                                 description="module:qualname of your own space: a define-by-run model function "
                                 "f(c: nasforge.Choices) -> nn.Module that asks for its decisions (c.choice, c.int, ...), or a "
                                 "SearchSpace class or factory (on the command line: --space module:qualname)")
    options: dict[str, Any] = Field(default_factory=dict, json_schema_extra={"flag": None},
                                    description="keyword arguments of a registered or own space class / factory (it also "
                                    "gets input_shape= and num_classes= where it takes them)")
    min_blocks: int = Field(2, ge=1, le=64, description="fewest blocks in a sampled network")
    max_blocks: int = Field(6, ge=1, le=64, description="most blocks in a sampled network")
    max_layers: int = Field(40, ge=1, le=256, description="most components a genome may have")
    channels: tuple[Annotated[int, Field(ge=1, le=4096)], ...] = Field((8, 16, 32, 64, 128), min_length=1,
                                                                       description="convolution widths to choose from")
    kernels: tuple[Annotated[int, Field(ge=1, le=31)], ...] = Field((3, 5, 7), min_length=1, description="kernel sizes to choose from")
    dense_units: tuple[Annotated[int, Field(ge=1, le=65536)], ...] = Field((32, 64, 128, 256), min_length=1,
                                                                           description="dense layer widths to choose from")
    dropout_rates: tuple[Annotated[float, Field(ge=0, lt=1)], ...] = Field((0.1, 0.2, 0.3, 0.5), min_length=1,
                                                                           description="dropout rates to choose from")
    activations: tuple[Literal["relu", "gelu", "silu", "tanh", "elu", "leaky_relu"], ...] = Field(
        ("relu", "gelu", "silu"), min_length=1, description="activations to choose from")
    max_skip_span: int = Field(6, ge=1, le=64, description="most components a skip connection may span")
    stem: bool = Field(True, description="layers space: sampled genomes of images wider than 16 pixels start with stride-2 "
                       "convolutions down to 16 (early downsampling); mutations may remove them")
    max_flops: Annotated[float, Field(gt=0)] | Literal["auto"] | None = Field(
        "auto", json_schema_extra={"flag_type": "str"},
        description="layers space: forward FLOPs per sample a candidate may have (strategies draw only candidates under it); "
        "auto: 10,000 per input value, at least 20M (28x28 images: 20M, 3x224x224: 1.5G); null: no cap")
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
        default_factory=dict, description="training hyper-parameters searched with the architecture: name -> values",
        json_schema_extra={"flag": None})
    cell_channels: int = Field(16, ge=1, le=4096, description="cell space: channels C of the first stage (the stages have "
                               "C, 2C, 4C; NB201's is 16)")
    cells_per_stage: int = Field(1, ge=1, le=16, description="cell space: cells per stage (NB201's is 5)")

    @model_validator(mode="before")
    @classmethod
    def _function_shorthand(cls, v: Any) -> Any:
        # `space: cell`, and a name that is an import path (`--space mypkg.models:make_model`): the user's own.
        if isinstance(v, str):
            v = {"name": v}
        if isinstance(v, dict):
            name = v.get("name")
            if isinstance(name, str) and ":" in name:
                if v.get("function") not in (None, name):
                    raise ValueError(f"name {name!r} is an import path and function is {v['function']!r}: give one of them")
                v = {**v, "name": "function", "function": name}
            elif v.get("function") is not None and "name" not in v:
                v = {**v, "name": "function"}
        return v

    @field_validator("name")
    @classmethod
    def _registered(cls, v: str) -> str:
        if v not in SPACES:
            raise ValueError(f"unknown search space {v!r}; known: {', '.join(SPACES.names())}, or module:qualname of your own "
                             "(a model function or SearchSpace class)")
        return v

    @model_validator(mode="after")
    def _blocks(self) -> SpaceConfig:
        if self.function is not None and self.name != "function":
            raise ValueError(f"function: names your own space, so name must be 'function' (or be left out), not {self.name!r}")
        if self.name == "function" and self.function is None:
            raise ValueError("function: give the module:qualname of your model function (e.g. mypkg.models:make_model)")
        if self.options and self.name in BUILTIN_SPACES:
            raise ValueError(f"options: the built-in {self.name!r} space takes its options as fields of space:, not options:")
        if self.min_blocks > self.max_blocks:
            raise ValueError(f"min_blocks ({self.min_blocks}) must not exceed max_blocks ({self.max_blocks})")
        for name, values in self.hparams.items():
            if not values or any(v < 0 or (v == 0 and name != "weight_decay") for v in values):
                raise ValueError(f"hparams.{name}: needs one or more positive values")
            if name in ("batch_size", "epochs") and any(v != int(v) for v in values):
                raise ValueError(f"hparams.{name}: values must be whole numbers")
        return self


class TrainingConfig(_Strict):
    epochs: int = Field(5, ge=1, le=100000, description="training epochs per candidate")
    batch_size: Annotated[int, Field(ge=1, le=1 << 20)] | Literal["auto"] = Field(
        "auto", json_schema_extra={"flag_type": "str"}, description="training batch size; auto: the largest power of two "
        "from 16 to 128 giving at least 20 optimizer steps per epoch (digits: 32, mnist1d: 128)")
    lr: float = Field(3e-3, gt=0, le=10, description="AdamW learning rate")
    weight_decay: float = Field(1e-4, ge=0, le=10, description="AdamW weight decay")
    cosine: bool = Field(True, description="cosine learning-rate schedule")
    trial_timeout: float | None = Field(None, gt=0, description="seconds one candidate may train; a candidate still running "
                                        "past it (and a grace) is stopped outright, inside a batch or a cost measurement")
    max_memory_gb: float | None = Field(None, gt=0, description="memory one candidate's training may need (estimated before "
                                        "it is built); larger ones fail unbuilt. Unset: half the memory free at the time")
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
    device: str = Field("auto", pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$", description="training device: auto (the GPU a "
                        "worker was given, else the CPU), cpu, cuda, cuda:N or mps; one this machine lacks is an error at the start")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="classifiers: the training loss spreads this share of each "
                                   "target over all classes (validation loss and scores stay plain cross-entropy)")
    loss: Literal["auto", "cross_entropy", "bce_with_logits", "mse", "l1", "huber", "custom"] = Field(
        "auto", description="training loss: auto (the task's: cross_entropy, bce_with_logits for multilabel, mse for "
        "regression), a name, or custom (Python API: loss=callable(outputs, targets))")
    optimizer: Literal["adamw", "sgd", "custom"] = Field("adamw", description="adamw, sgd (with momentum, nesterov) or custom "
                                                         "(Python API: optimizer=factory(params, lr=, weight_decay=))")
    momentum: float = Field(0.9, ge=0, lt=1, description="sgd: momentum")
    nesterov: bool = Field(False, description="sgd: Nesterov momentum")
    precision: Literal["32", "bf16", "16-mixed"] = Field(
        "32", description="arithmetic of training and scoring: 32 (float32), bf16 (bfloat16 autocast around the forward pass "
        "and loss; CPU and CUDA) or 16-mixed (float16 autocast with gradient scaling; CUDA only). Weights stay float32")
    channels_last: bool = Field(False, description="2-D convolution nets train in channels-last (NHWC) memory order, "
                                "faster on GPUs with autocast; other networks are left as they are (noted once in the log)")
    final_compile: bool = Field(False, description="the final retrain runs the network through torch.compile (never the "
                                "search: a new graph per candidate costs more than it saves); falls back to eager with a "
                                "warning when compiling fails; needs final_epochs")
    cv_folds: int | None = Field(None, ge=3, le=100, description="classifiers: score every candidate by the mean over K "
                                 "folds (the validation split and K-1 of the training split; by group where the data has groups, "
                                 "e.g. fsdd speakers with a val_speaker); K times the training; the trial keeps fold 1's weights")

    @field_validator("precision", mode="before")
    @classmethod
    def _precision(cls, v: Any) -> Any:
        # YAML reads `precision: 32` as a number; Lightning's names (bf16-mixed, 32-true) are accepted too.
        from .evaluate.accelerator import canonical_precision

        return canonical_precision(v)

    @model_validator(mode="after")
    def _final(self) -> TrainingConfig:
        if self.final_compile and self.final_epochs is None:
            raise ValueError("final_compile: compiles the final retrain, so it needs final_epochs")
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
    name: Literal["none", "halving"] = Field("none", description="multi-fidelity scheduling: none or halving (successive halving)")
    min_epochs: int = Field(1, ge=1, le=100000, description="epochs of the lowest rung")
    eta: int = Field(3, ge=2, le=100, description="keep the top 1/eta of each rung")
    rungs: int = Field(3, ge=2, le=10, description="number of rungs; the top rung trains min_epochs * eta^(rungs-1)")


# Rewards a supernet path's scores give (class predictions and the loss; no probabilities, no custom metric).
ONE_SHOT_REWARDS = ("auto", "accuracy", "precision", "recall", "f1", "neg_loss")


class EvaluationConfig(_Strict):
    """How a candidate is scored: trained on its own, or as a path of one weight-sharing supernet."""

    name: Literal["train", "one-shot"] = Field("train", description="how candidates are scored: train (each on its own) or "
                                               "one-shot (a supernet of the space is trained once and every candidate is "
                                               "scored as one of its paths; cell space; any strategy: SPOS with evolution, "
                                               "ENAS with reinforce and shared_steps)")
    supernet_epochs: int = Field(100, ge=0, le=100000, description="one-shot: epochs of supernet training before the search "
                                 "(ranking needs it: on MNIST-1D Kendall tau rose from 0.03 at 25 epochs to 0.3 at 50 and 0.5 at 100)")
    sampling: Literal["uniform", "fair"] = Field("uniform", description="one-shot: paths per supernet training step: uniform "
                                                 "(SPOS, one random path) or fair (FairNAS, every op of every edge once)")
    bn_batches: int = Field(4, ge=1, le=100000, description="one-shot: training batches a path's batch-norm statistics "
                            "are recomputed on before it is scored")
    top_k: int = Field(3, ge=1, le=1000, description="one-shot: the best K paths are retrained from scratch (final_epochs, "
                       "else epochs) and the best by validation is returned")
    shared_steps: int = Field(0, ge=0, le=1_000_000, description="one-shot (ENAS): the supernet is also trained this many "
                              "steps on the paths asked for, every shared_every queries (0: frozen after supernet_epochs)")
    shared_every: int = Field(10, ge=1, le=1_000_000, description="one-shot (ENAS): queries between shared-weight training phases")


class PrescreenConfig(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"flag_prefix": "prescreen_"})

    proxy: Literal["none", "synflow", "naswot"] = Field("none", description="zero-cost proxy that pre-screens candidates: none, "
                                                        "synflow, naswot", json_schema_extra={"flag": "prescreen"})
    pool: int = Field(5, ge=2, le=10000, description="candidates scored per candidate trained")
    sample_pool: int | None = Field(None, ge=1, le=10000, description="candidates scored per random sample "
                                    "(initial populations, random search); unset: pool; 1: samples are not screened")
    cap: Literal["none", "params", "flops"] = Field("params", description="only candidates no larger than the pool's "
                                                    "median in this measure compete (proxies favour big, slow networks)")


class BudgetConfig(_Strict):
    trials: int | None = Field(40, ge=1, le=10_000_000, description="number of trials")
    seconds: float | None = Field(None, gt=0, description="wall-clock budget of the whole search")
    target: float | None = Field(None, description="stop once the best reward reaches this")

    @model_validator(mode="after")
    def _some_budget(self) -> BudgetConfig:
        if self.trials is None and self.seconds is None and self.target is None:
            raise ValueError("give at least one of trials, seconds or target, or the search never stops")
        return self


# What a trained study can optimise, constrain or scalarize: the validation metrics and the cost
# measures of evaluate/cost.py (measured before training, so the only ones constraints may use).
COST_MEASURES = ("params", "flops", "size_bytes", "latency_ms")
# receptive_field: read off the genome (layers space), for constraints only.
CONSTRAINT_MEASURES = (*COST_MEASURES, "receptive_field")
METRICS = ("accuracy", "precision", "recall", "f1", "loss", "reward", "train_seconds", "auc", "average_precision",
           "label_accuracy", "rmse", "mae", "r2", *COST_MEASURES)


class CostConfig(_Strict):
    """How cost measures are taken; params, flops, size_bytes and latency_ms are recorded for every trial."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"flag_prefix": "latency_"})

    batch_size: int = Field(1, ge=1, le=1 << 16, description="samples per timed forward pass of latency_ms",
                            json_schema_extra={"flag": "latency_batch"})
    warmup: int = Field(3, ge=0, le=1000, description="untimed forward passes before latency is timed")
    repeats: int = Field(10, ge=1, le=10000, description="timed forward passes; latency_ms is their median")
    device: Literal["cpu", "cuda"] = Field("cpu", description="where latency_ms is timed: cpu, or cuda (the GPU the trial "
                                           "runs on, synchronised around every timed pass); float32, eval mode")


class ScalarizeConfig(_Strict):
    """The reward strategies see: the plain reward, MnasNet's reward x (LAT/T)^w, or a weighted sum."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"flag_prefix": "scalarize_"})

    name: Literal["none", "mnasnet", "weighted"] = Field("none", description="reward strategies see: none, mnasnet "
                                                         "(reward x (LAT/T)^w) or weighted (a weighted sum)")
    measure: Literal["params", "flops", "size_bytes", "latency_ms"] = Field("latency_ms", description="mnasnet: the cost LAT")
    target: float | None = Field(None, gt=0, description="mnasnet: the target T of the cost")
    mode: Literal["soft", "hard"] = Field("soft", description="mnasnet: soft (alpha = beta = -0.07) or hard (alpha = 0, beta = -1)")
    alpha: float | None = Field(None, description="mnasnet: exponent when LAT <= T (overrides mode)")
    beta: float | None = Field(None, description="mnasnet: exponent when LAT > T (overrides mode)")
    weights: dict[str, float] = Field(default_factory=dict, description="weighted: NAME=WEIGHT,... e.g. accuracy=1,params=-1e-6; "
                                      "'reward' is the plain reward", json_schema_extra={"flag_type": "str"})

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

    name: str = Field("serial", description="where trials run: serial (this process), pool (local worker processes), "
                      "ray, or any registered executor", json_schema_extra={"flag": "executor"})
    workers: int | None = Field(None, ge=1, le=4096, description="trials run at once; pool: one per core by default; "
                                "ray: cluster CPUs / cpus_per_trial by default")
    threads: int | None = Field(None, ge=1, le=1024, description="torch threads per pool worker (default cores / workers)")
    address: str | None = Field(None, min_length=1, description="ray: 'auto' or HOST:PORT of a running cluster; "
                                "unset starts a local Ray for the search")
    cpus_per_trial: float = Field(1.0, gt=0, le=4096, description="ray: CPUs (and torch threads) one trial holds")
    gpus_per_trial: float = Field(0.0, ge=0, le=64, description="ray: GPUs one trial holds: a fraction of one (0.5: two "
                                  "trials share a device) or a whole number; 0: trials see no GPU (Ray hides them)")
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

    @field_validator("name")
    @classmethod
    def _registered(cls, v: str) -> str:
        if v not in EXECUTORS:
            raise ValueError(f"unknown executor {v!r}; known: {', '.join(EXECUTORS.names())}")
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
        if self.gpus_per_trial > 1 and self.gpus_per_trial != int(self.gpus_per_trial):
            raise ValueError(f"gpus_per_trial: {self.gpus_per_trial:g}; Ray shares a GPU by fractions of one, so more than one "
                             "must be a whole number")
        return self


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
        from .registry import EVALUATORS

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
        from .errors import NasforgeError
        from .objectives import Objective

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
            "training.cv_folds": (self.training.cv_folds is not None, "paths are scored on the validation split, not by folds"),
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
            raise ValueError("; ".join(_lines(exc, "strategy"))) from None
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("executor", mode="before")
    @classmethod
    def _executor_shorthand(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v


def _lines(exc: ValidationError, prefix: str = "") -> list[str]:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "") or "(top level)"
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{loc}: {msg}")
    return lines


def _format(lines: list[str]) -> str:
    return "invalid configuration:\n  " + "\n  ".join(lines)


def parse_config(data: Any) -> SearchConfig:
    """Validate a mapping into a SearchConfig; ConfigError names every bad field."""
    if not isinstance(data, dict):
        raise ConfigError(f"invalid configuration: expected a mapping of fields, got {type(data).__name__}")
    data = dict(data)
    lines: list[str] = []
    if "strategy" in data:
        # Validated on its own first, so that its errors carry their own field paths.
        try:
            data["strategy"] = parse_options(data["strategy"])
        except ValidationError as exc:
            lines += _lines(exc, "strategy")
            data.pop("strategy")
        except ConfigError as exc:
            lines.append(str(exc))
            data.pop("strategy")
    try:
        config = SearchConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format(lines + _lines(exc))) from None
    except (TypeError, ValueError, RecursionError) as exc:  # defensive: never let a traceback through
        raise ConfigError(f"invalid configuration: {exc}") from None
    if lines:
        raise ConfigError(_format(lines))
    return config


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


def flags() -> dict[str, Flag]:
    """Every command-line flag / `search()` keyword option, derived from the schema and the
    registered strategies' options (so a strategy registered now brings its flags with it)."""
    sections = []
    for name in STRATEGIES.names():
        try:
            sections.append((name, options_model(name)))
        except ConfigError:  # a plug-in that fails to import has no flags; choosing it says why
            continue
    table = derive(SearchConfig, {"strategy": sections})
    for flag, registry in (("strategy", STRATEGIES), ("executor", EXECUTORS), ("space", SPACES)):
        table[flag] = replace(table[flag], help=f"{table[flag].help}; known: {', '.join(registry.names())}")
    return table


def build_config(base: dict[str, Any] | None = None, **options: Any) -> SearchConfig:
    """A config from an optional mapping plus flag-style keyword options (None means 'not given')."""
    data: dict[str, Any] = copy.deepcopy(base or {})
    table = flags()
    unknown = sorted(set(options) - set(table))
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(table))}")
    # Section names first, so a flag that picks another strategy (executor) drops the options of the
    # one the file named rather than mixing them.
    for name in sorted(options, key=lambda n: not table[n].path.endswith(".name")):
        value = options[name]
        if value is None:
            continue
        flag = table[name]
        section = flag.path.split(".")[0]
        if flag.path.endswith(".name") and section in ("strategy", "executor", "space"):
            current = data.get(section)
            current_name = current.get("name") if isinstance(current, dict) else current
            if current_name != value:
                data[section] = {"name": value}
        set_path(data, flag.path, flag.convert(value))
    return parse_config(data)


def to_dict(config: SearchConfig) -> dict[str, Any]:
    return config.model_dump(mode="json")
