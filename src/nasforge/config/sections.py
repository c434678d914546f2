"""The sections of a search config that say what is searched and how each candidate is trained:
dataset, space, training, fidelity, evaluation, prescreen, budget and executor (one pydantic model
each).

Every field is described once, here: the command-line flags (flags.py) and the docs' config
reference are derived from these models.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..registry import EXECUTORS, SPACES


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
                      "(or SearchSpace class); with --resume, hands a run its own function where it cannot import it "
                      "(module:qualname or path/to/script.py:name)")
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
                                 "e.g. fsdd speakers with a val_speaker); K times the training; the trial keeps fold 1's weights. "
                                 "With evaluation one-shot (paths scored on the validation split) the top_k retrained paths are "
                                 "ranked by the mean over the K folds")

    @field_validator("precision", mode="before")
    @classmethod
    def _precision(cls, v: Any) -> Any:
        # YAML reads `precision: 32` as a number; Lightning's names (bf16-mixed, 32-true) are accepted too.
        from ..evaluate.accelerator import canonical_precision

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
                       "else epochs) and the best by validation (with training.cv_folds: by the mean over the folds) is returned")
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
