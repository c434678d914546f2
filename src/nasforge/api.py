"""Wiring: a SearchConfig becomes a Study (space, strategy, evaluator, store). Used by search() and the CLI."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .budget import Budget
from .config import SearchConfig, build_config, parse_config, read_yaml, to_dict
from .data import load_dataset
from .data.datasets import LANGUAGE_MODEL_SOURCES, Dataset, SourceOptions, source_kind
from .data.text import CharCorpus, TextDataset, load_char_corpus
from .errors import ConfigError, InvalidGenome, StoreError
from .evaluate.constraints import MnasNetReward, Scalarization, WeightedSum, measures_of, parse_constraints
from .evaluate.cost import GENOME_MEASURES, CostModel, CostOptions
from .evaluate.crossval import extra_folds
from .evaluate.evaluator import Evaluator, TrainingEvaluator
from .evaluate.language_model import LanguageModelEvaluator
from .evaluate.trainer import TrainingOptions
from .execute import Executor, SerialExecutor, make_executor
from .registry import EXECUTORS, STRATEGIES
from .schedule import make_scheduler
from .space import CellSpace, LayerGraphSpace, LayerSpaceOptions, SearchSpace, SequenceSpace, SequenceSpaceOptions
from .store import STORE_FILE, Store, TrialRecord
from .strategy.base import Strategy
from .strategy.factory import create_strategy
from .strategy.feasible import FeasibleSpace
from .strategy.given import GivenFirst
from .strategy.prescreen import ProxyScreenedSpace
from .study import Study

# Fields a resumed search may change: the budget, how it is shown and where trials run (a study
# started on a laptop may go on on a cluster). Everything else is the study's.
RESUMABLE = {"trials", "seconds", "target", "progress",
             "executor", "workers", "threads", "address", "cpus_per_trial", "gpus_per_trial", "ray_temp_dir", "max_retries"}


# Space fields the sequence space reads, under its own names; only fields the user set are passed,
# so its defaults (sized for token models) are not replaced by the layer space's.
SEQUENCE_FIELDS = {"min_blocks": "min_blocks", "max_blocks": "max_blocks", "channels": "widths", "kernels": "kernels",
                   "dropout_rates": "dropout_rates", "blocks": "kinds", "rnn_widths": "rnn_widths", "rnn_layers": "rnn_layers",
                   "ngrams": "ngrams", "bag_dims": "bag_dims"}

# Space fields of the cell space alone.
CELL_FIELDS = {"cell_channels", "cells_per_stage"}

# Space fields the layers space has no option for (it is built from the rest of the space config).
SEQUENCE_ONLY = set(SEQUENCE_FIELDS) - {f.name for f in dataclasses.fields(LayerSpaceOptions)}


def load_data_for(config: SearchConfig) -> Dataset | CharCorpus:
    """The dataset (or, for language-model sources, the character corpus) a config names."""
    d = config.dataset
    kind, path = source_kind(d.name)
    if kind in LANGUAGE_MODEL_SOURCES:
        # The corpus convention: the last 10% is held out (halved into validation and test).
        return load_char_corpus(path, held_out=0.1, name=d.name)
    return load_dataset(d.name, val_fraction=d.val_fraction, test_fraction=d.test_fraction, seed=d.split_seed,
                        label_column=d.label_column, layout=d.layout,
                        options=SourceOptions(d.split, d.held_out_speaker, d.image_size, d.max_length, d.cache_dir,
                                              val_speaker=d.val_speaker, augment=d.augment, band_norm=d.band_norm,
                                              test_views=d.test_views))


def make_space_for_data(config: SearchConfig, data: Dataset | CharCorpus) -> SearchSpace:
    """The configured space for this data; a space that cannot read the data is a ConfigError."""
    name = config.space.name
    tokens = isinstance(data, (TextDataset, CharCorpus))
    if tokens != (name == "sequence"):
        what = "token sequences (text)" if tokens else f"inputs of shape {list(data.input_shape)}"
        raise ConfigError(f"space.name: the {name!r} space cannot model {what}; use "
                          f"{'sequence' if tokens else 'layers or cell'} (--space)")
    if name != "layers" and config.space.hparams:
        raise ConfigError(f"space.hparams: training hyper-parameters are searched only in the layers space, not in {name!r}; "
                          "set them under training: instead")
    if name != "cell" and (cell_only := CELL_FIELDS & config.space.model_fields_set):
        raise ConfigError(f"space: {', '.join(sorted(cell_only))} shape the cell space, not the {name!r} space")
    if name == "sequence":
        options = SequenceSpaceOptions(**{SEQUENCE_FIELDS[f]: getattr(config.space, f) for f in SEQUENCE_FIELDS
                                          if f in config.space.model_fields_set})
        if isinstance(data, CharCorpus):
            return SequenceSpace(data.vocab_size, None, config.dataset.max_length or 128, "lm", options)
        return SequenceSpace(len(data.tokenizer), data.num_classes, data.input_shape[0], "classify", options)
    if name == "cell":
        return CellSpace(data.input_shape, data.num_classes, channels=config.space.cell_channels,
                         cells_per_stage=config.space.cells_per_stage)
    return make_space_for(config, data.input_shape, data.num_classes)


def cost_options(config: SearchConfig) -> CostOptions:
    c = config.costs
    return CostOptions(batch_size=c.batch_size, warmup=c.warmup, repeats=c.repeats)


def make_scalarization(config: SearchConfig) -> Scalarization | None:
    s = config.scalarize
    if s.name == "mnasnet":
        return MnasNetReward.of(s.measure, s.target, s.mode, s.alpha, s.beta)
    if s.name == "weighted":
        return WeightedSum.of(s.weights)
    return None


def make_evaluator(config: SearchConfig, space: SearchSpace, data: Dataset | CharCorpus, training: TrainingOptions) -> Evaluator:
    if config.evaluation.name == "one-shot":
        return make_one_shot_evaluator(config, space, data, training)
    if isinstance(data, CharCorpus):
        used = [f for f in ("objectives", "constraints") if getattr(config, f)] + (["scalarize"] if config.scalarize.name != "none" else [])
        if used:
            raise ConfigError(f"{', '.join(used)}: cost measures, constraints and scalarized rewards are not available for "
                              "language models yet")
        if training.label_smoothing:
            raise ConfigError("training.label_smoothing: language models train on plain next-character cross-entropy")
        if config.training.cv_folds is not None:
            raise ConfigError("training.cv_folds: language models are scored on their own validation text, not by folds")
        return LanguageModelEvaluator(space, data, training, config.reward, seq_len=config.dataset.max_length or 128)
    if training.cpu_seconds is not None:
        raise ConfigError("training.cpu_seconds: only language models train to a CPU-time budget; classifiers train for "
                          "`epochs` (use trial_timeout to cap a candidate's time)")
    try:
        folds = extra_folds(data, config.training.cv_folds, config.dataset.split_seed) if config.training.cv_folds else []
    except ValueError as exc:
        raise ConfigError(f"training.cv_folds: {exc}") from None
    return TrainingEvaluator(space, data, training, config.reward, proxies=config.training.proxies, costs=cost_options(config),
                             constraints=parse_constraints(config.constraints), scalarization=make_scalarization(config),
                             folds=folds)


def make_one_shot_evaluator(config: SearchConfig, space: SearchSpace, data: Dataset | CharCorpus,
                            training: TrainingOptions) -> Evaluator:
    """The supernet evaluator of `evaluation: one-shot` (evaluate/oneshot/); ENAS's when shared_steps > 0.
    The supernet trains with the training section's batch size, learning rate, weight decay and schedule."""
    from .evaluate.oneshot import OneShotEvaluator, ScoringOptions, SupernetOptions
    from .evaluate.oneshot.enas import EnasEvaluator

    if isinstance(data, CharCorpus):
        raise ConfigError("evaluation: one-shot evaluation scores classifiers; language models are trained on their own")
    e = config.evaluation
    supernet = SupernetOptions(epochs=e.supernet_epochs, sampling=e.sampling, batch_size=training.batch_size, lr=training.lr,
                               weight_decay=training.weight_decay, cosine=training.cosine,
                               label_smoothing=training.label_smoothing)
    scoring = ScoringOptions(bn_batches=e.bn_batches, batch_size=training.batch_size)
    if e.shared_steps:
        return EnasEvaluator(space, data, training, supernet, scoring, config.reward, config.seed,
                             shared_steps=e.shared_steps, shared_every=e.shared_every)
    return OneShotEvaluator(space, data, training, supernet, scoring, config.reward, config.seed)


def screened(config: SearchConfig, space: SearchSpace, data: Dataset | CharCorpus) -> SearchSpace:
    """The space strategies draw from: only feasible candidates under constraints, and pre-screened by
    a zero-cost proxy when configured (screening picks among feasible candidates, so it wraps outside)."""
    if config.constraints and not isinstance(data, CharCorpus):
        options = cost_options(config)
        space = FeasibleSpace(space, parse_constraints(config.constraints), CostModel(space, data.x_train[: options.batch_size], options))
    p = config.prescreen
    if p.proxy == "none":
        return space
    if isinstance(data, CharCorpus):
        raise ConfigError("prescreen.proxy: zero-cost proxies score classifiers; not available for language models")
    return ProxyScreenedSpace(space, data.x_train[:128], p.proxy, p.pool, sample_pool=p.sample_pool, cap=p.cap)


def make_space_for(config: SearchConfig, input_shape: tuple[int, ...], num_classes: int) -> SearchSpace:
    options = config.space.model_dump(exclude={"name", "hparams", *SEQUENCE_ONLY, *CELL_FIELDS})
    # batch size and epochs are counts; JSON/YAML may have given them as floats.
    hparams = tuple((name, tuple(int(v) if name in ("batch_size", "epochs") else float(v) for v in values))
                    for name, values in sorted(config.space.hparams.items()))
    return LayerGraphSpace(input_shape, num_classes, LayerSpaceOptions(**options, hparams=hparams))


def build_study(config: SearchConfig, resume: bool = False, callbacks: tuple[Callable[[Study, TrialRecord], None], ...] = (),
                strategy: Strategy | None = None, executor: Executor | None = None) -> Study:
    """The study a config describes; `strategy` / `executor` instances replace the ones it names."""
    run_dir = Path(config.out)
    exists = (run_dir / STORE_FILE).exists()
    if exists and not resume:
        raise ConfigError(f"out: {run_dir} already holds a study; resume it with --resume or choose another --out")
    if resume and not exists:
        raise StoreError(f"cannot resume: {run_dir} holds no study ({run_dir / STORE_FILE} is missing)")
    data = load_data_for(config)
    if config.dataset.test_views and getattr(data, "test_views", None) is None:
        raise ConfigError(f"dataset.test_views: {config.dataset.name!r} has no test-time views (fsdd spectrograms have)")
    space = make_space_for_data(config, data)
    # A measure read off the genome needs a space that defines it (SearchSpace's default is None).
    for name in sorted(measures_of(parse_constraints(config.constraints)) & set(GENOME_MEASURES)):
        if getattr(type(space), name) is getattr(SearchSpace, name):
            raise ConfigError(f"constraints: the {space.name!r} space has no {name} (the layers space has)")
    given = initial_genomes(config, space)  # before the store exists: a bad entry leaves no half-made run
    t = config.training
    training = TrainingOptions(epochs=t.epochs, batch_size=t.batch_size, lr=t.lr, weight_decay=t.weight_decay,
                               cosine=t.cosine, time_limit=t.trial_timeout, cpu_seconds=t.cpu_seconds, device=t.device,
                               label_smoothing=t.label_smoothing)
    evaluator = make_evaluator(config, space, data, training)  # its ConfigErrors, too, come before the store
    search_space = screened(config, space, data)
    for i, genome in enumerate(given):
        if (why := search_space.refusal(genome)) is not None:
            raise ConfigError(f"initial_genomes[{i}]: {why} (the constraints {', '.join(config.constraints)}); "
                              "drop it or loosen the constraints")
    store = Store.in_dir(run_dir, create=True)
    if not exists:
        store.set("config", to_dict(config))
        store.set("dataset", data.summary())
        store.set("space", {"name": space.name, "config": space.config()})
    else:
        store.set("config", to_dict(config))  # only budget fields can differ, see resume_config
    # One-shot scores only rank: the best top_k paths are retrained from scratch (final_epochs, else epochs).
    one_shot = config.evaluation.name == "one-shot"
    final_epochs = t.final_epochs or (t.epochs if one_shot else None)
    final_candidates = config.evaluation.top_k if one_shot else 1
    f = config.fidelity
    scheduler = make_scheduler(f.name, f.min_epochs, f.eta, f.rungs, t.early_stop, t.early_stop_min_trials, evaluator.epochs)
    if strategy is None:
        strategy = create_strategy(config.strategy, search_space, config.seed, config.objectives)
    elif getattr(strategy, "space", None) not in (space, search_space):
        raise ConfigError("strategy: this instance searches another space object than the study's; pass its class "
                          "(strategy=MyStrategy) or a factory (lambda space, seed: MyStrategy(space, seed)) and it is built "
                          "on the study's space")
    if given:
        strategy = GivenFirst(strategy, given)
    if executor is not None and evaluator.serial_only and not isinstance(executor, SerialExecutor):
        raise ConfigError(f"executor: {type(evaluator).__name__} holds its shared weights in this process; trials cannot "
                          "go to another executor")
    return Study(
        space, strategy, evaluator, store, run_dir,
        Budget(config.budget.trials, config.budget.seconds, config.budget.target), seed=config.seed,
        keep_top=config.keep_top, final_epochs=final_epochs, final_data=t.final_data,
        final_ensemble=t.final_ensemble, final_seeds=t.final_seeds, final_candidates=final_candidates,
        progress=config.progress, callbacks=callbacks,
        executor=executor or make_executor(config.executor, evaluator), max_retries=config.executor.max_retries,
        scheduler=scheduler, inherit=default_inherit(t.inherit, evaluator), finetune_epochs=t.finetune_epochs,
        objectives=config.objectives,
        test_views=getattr(data, "test_views", None),
    )


def initial_genomes(config: SearchConfig, space: SearchSpace) -> list[Any]:
    """The config's initial_genomes as genomes of this space (inline, a .json genome, or the genome.json
    of `nasforge export`); a missing file or a genome the space cannot read is a ConfigError naming the entry."""
    genomes = []
    for i, item in enumerate(config.initial_genomes):
        where = f"initial_genomes[{i}]"
        if isinstance(item, str):
            path = Path(item).expanduser()
            if not path.is_file():
                raise ConfigError(f"{where}: no genome file {item!r} (give a path to a .json genome, or the genome inline)")
            try:
                item = json.loads(path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ConfigError(f"{where}: {path} is not a JSON genome ({exc})") from None
            if isinstance(item, dict) and "members" in item:
                raise ConfigError(f"{where}: {path} is an ensemble export; give one member's genome")
            if isinstance(item, dict) and "genome" in item and "space" in item:  # an export's genome.json
                if item["space"] != space.name:
                    raise ConfigError(f"{where}: {path} is a genome of the {item['space']!r} space, this search is in "
                                      f"the {space.name!r} space")
                item = item["genome"]
        try:
            genomes.append(space.from_json(item))
        except InvalidGenome as exc:
            raise ConfigError(f"{where}: not a genome of the {space.name!r} space: {exc}") from None
    return genomes


def default_inherit(inherit: bool | None, evaluator: Evaluator) -> bool:
    """Weight inheritance unless the config says otherwise, wherever the evaluator supports it
    (measured on MNIST-1D: the same accuracy for 0.63x the CPU alone, +2 points with halving and
    the pre-screen; README "Cheaper evaluation"). Strategies that make no children (random search)
    are unaffected either way."""
    if inherit and not evaluator.inherits_weights:
        raise ConfigError(f"training.inherit: {type(evaluator).__name__} cannot map a parent's weights onto a child; "
                          "set inherit: false")
    return evaluator.inherits_weights if inherit is None else inherit


def resume_config(out: str | Path, **overrides: Any) -> SearchConfig:
    """The stored config of a study, with budget / progress overrides."""
    run_dir = Path(out)
    if not (run_dir / STORE_FILE).exists():
        raise StoreError(f"cannot resume: {run_dir} holds no study ({run_dir / STORE_FILE} is missing)")
    store = Store.in_dir(run_dir)
    try:
        stored = store.get("config")
    finally:
        store.close()
    bad = sorted(k for k, v in overrides.items() if v is not None and k not in RESUMABLE | {"out"})
    if bad:
        raise ConfigError(f"{', '.join(bad)}: cannot be changed when resuming (only {', '.join(sorted(RESUMABLE))} can)")
    overrides.pop("out", None)
    # The study lives where its store is: a run directory copied or moved elsewhere resumes there, not
    # in the directory its stored config was first written to.
    return build_config(stored, **overrides, out=str(run_dir))


def _adopt(options: dict[str, Any]) -> dict[str, Any]:
    """Turn `strategy=` / `executor=` given as Python objects into the names a config records (a
    class or factory: its registered name or import path, see Registry.adopt); an instance is
    returned apart, to be used as it is."""
    instances: dict[str, Any] = {}
    for key, registry, base in (("strategy", STRATEGIES, Strategy), ("executor", EXECUTORS, Executor)):
        value = options.get(key)
        if value is None or isinstance(value, str):
            continue
        if isinstance(value, base):
            instances[key] = value
            value = type(value)
        options[key] = registry.adopt(value)
    return instances


def search(config: SearchConfig | dict[str, Any] | str | Path | None = None, *, resume: bool = False,
           callbacks: tuple[Callable[[Study, TrialRecord], None], ...] = (), **options: Any) -> Study:
    """Run (or resume) a search and return the finished Study (`.best`, `.trials`, `.final`).

    `config` is a SearchConfig, a mapping or a YAML path; keyword options are the CLI's flags
    (dataset=, strategy=, trials=, epochs=, seed=, out=, ...) and override it. `strategy` and
    `executor` may also be objects: a registered name, a class or factory (`Strategy` subclass,
    `(space, seed, **options) -> Strategy`), or an instance used as it is.
    """
    instances = _adopt(options)
    if resume:
        out = options.pop("out", None) or (config.out if isinstance(config, SearchConfig) else None)
        if out is None:
            raise ConfigError("out: give the run directory of the study to resume")
        for key in instances.keys() | {k for k in ("strategy", "executor") if k in options and ":" in str(options[k])}:
            options.pop(key, None)  # handed over again only to be found: the stored config names it
        cfg = resume_config(out, **options)
    elif isinstance(config, SearchConfig):
        cfg = build_config(to_dict(config), **options)
    elif isinstance(config, (str, Path)):
        cfg = build_config(read_yaml(config), **options)
    else:
        cfg = build_config(config, **options)
    study = build_study(cfg, resume=resume, callbacks=callbacks, **instances)
    return study.run()


__all__ = ["build_study", "parse_config", "resume_config", "search"]
