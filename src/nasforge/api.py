"""The composition root: a SearchConfig becomes a Study (space, strategy, evaluator, executor,
scheduler, store), and `search()` runs it. Used by the Python API and the CLI.

Each part is made where it belongs, from the config: the data by data/load.py, the space by
space/factory.py, the evaluator by evaluate/factory.py, the strategy by strategy/factory.py, the
executor by execute/, the scheduler by schedule/; this module checks how they fit together and
assembles them, taking the run directory's lock before anything is loaded.
"""

from __future__ import annotations

import contextlib
import json
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .budget import Budget
from .callbacks import wants_epochs
from .config import SearchConfig, build_config, parse_config, read_yaml, to_dict
from .data.dataset import Dataset
from .data.datasets import split_warnings
from .data.load import load_data_for
from .data.streamed import StreamedDataset
from .data.text import CharCorpus
from .errors import ConfigError, InvalidGenome, NasforgeWarning, StoreError, WriteFailed
from .evaluate.accelerator import check_precision
from .evaluate.constraints import Constraint, measures_of, parse_constraints
from .evaluate.cost import GENOME_MEASURES, CostModel
from .evaluate.factory import cost_options, default_inherit, make_evaluator, training_options
from .evaluate.trainer import check_device
from .example import example_of, save_example
from .execute import Executor, SerialExecutor, make_executor
from .final import FinalOptions
from .registry import EXECUTORS, STRATEGIES
from .rundir import RunDir, check_folder, describe_os_error, is_write_failure
from .schedule import make_scheduler
from .space import LayerGraphSpace, SearchSpace
from .space.factory import space_for_run
from .space.resolve import check_portable, space_record, space_reference
from .store import STORE_FILE, Store, TrialRecord
from .strategy.base import Strategy
from .strategy.factory import create_strategy
from .strategy.feasible import FeasibleSpace
from .strategy.given import GivenFirst
from .strategy.prescreen import ProxyScreenedSpace
from .study import Study
from .usercode import UserObjects, check_same_data, user_objects

# Fields a resumed search may change: the budget, how it is shown and where trials run (a study
# started on a laptop may go on on a cluster). Everything else is the study's.
RESUMABLE = {"trials", "seconds", "target", "progress",
             "executor", "workers", "threads", "address", "cpus_per_trial", "gpus_per_trial", "ray_temp_dir", "max_retries"}


def compute_cap(config: SearchConfig, space: SearchSpace) -> Constraint | None:
    """The layers space's cap on forward FLOPs per sample (space.max_flops; auto: FLOPS_PER_INPUT per
    input value, at least MIN_FLOPS_CAP). Without it, 28x28 images drew full-resolution 7x7
    convolutions of 128 channels (median 53 MFLOPs, a tenth over 490M) and a 10-trial search of
    5,000 images took over half an hour; digits and mnist1d candidates stay 80% and 98% under it."""
    cap = config.space.max_flops
    if not isinstance(space, LayerGraphSpace) or cap is None:
        return None
    if cap == "auto":
        cap = max(MIN_FLOPS_CAP, FLOPS_PER_INPUT * math.prod(space.input_shape))
    return Constraint("flops", "<=", float(cap))


MIN_FLOPS_CAP = 20e6
FLOPS_PER_INPUT = 10_000


def screened(config: SearchConfig, space: SearchSpace, data: Dataset | StreamedDataset | CharCorpus) -> SearchSpace:
    """The space strategies draw from: only feasible candidates under constraints (and the compute
    cap), and pre-screened by a zero-cost proxy when configured (screening picks among feasible
    candidates, so it wraps outside)."""
    constraints = parse_constraints(config.constraints) + tuple(c for c in (compute_cap(config, space),) if c)
    if constraints and not isinstance(data, CharCorpus):
        options = cost_options(config)
        space = FeasibleSpace(space, constraints, CostModel(space, data.inputs(options.batch_size), options))
    p = config.prescreen
    if p.proxy == "none":
        return space
    if isinstance(data, CharCorpus):
        raise ConfigError("prescreen.proxy: zero-cost proxies score classifiers; not available for language models")
    return ProxyScreenedSpace(space, data.inputs(128), p.proxy, p.pool, sample_pool=p.sample_pool, cap=p.cap)


def build_study(config: SearchConfig, resume: bool = False, callbacks: tuple[Callable[[Study, TrialRecord], None], ...] = (),
                strategy: Strategy | None = None, executor: Executor | None = None, space: Any = None,
                objects: UserObjects | None = None) -> Study:
    """The study a config describes (nothing runs yet); `strategy` / `executor` instances replace the ones
    it names; `space` is the user's own space as a Python object (search(space=...)) where the config
    names it by import path in space.function (space/resolve.py); `objects`: what else the Python API
    was given beside the config (data, evaluate, callables: usercode.py)."""
    objects = objects or UserObjects()
    # The run's lock is taken before any data is loaded, so a second writer, a bad --out or a damaged
    # store fails at once; Study.run releases it.
    rundir = RunDir(config.out)
    made = not rundir.path.exists()
    rundir.acquire()  # checks and makes the folder first
    store = None
    try:
        exists = rundir.has_store()
        if exists and not resume:
            raise ConfigError(f"out: {rundir.path} already holds a study; resume it with --resume or choose another --out")
        if resume and not exists:
            raise StoreError(f"cannot resume: {rundir.path} holds no study ({rundir.store_path} is missing)")
        store = rundir.open_store() if exists else None  # checked: an empty or damaged store is refused here
        return _assemble(config, rundir, store, callbacks, strategy, executor, space, objects)
    except BaseException:
        if store is not None:
            store.close()
        rundir.release()
        if made and not rundir.has_store():  # leave no empty run directory behind a refused config
            rundir.lock_path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                rundir.path.rmdir()
        raise


def _assemble(config: SearchConfig, rundir: RunDir, store: Store | None, callbacks: tuple[Callable[[Study, TrialRecord], None], ...],
              strategy: Strategy | None, executor: Executor | None, space: Any, objects: UserObjects) -> Study:
    run_dir, exists = rundir.path, store is not None
    check_precision(config.training.precision, check_device(config.training.device))
    if config.costs.device != "cpu":
        check_device(config.costs.device, "costs.device")
    for field, passed in (("loss", objects.loss), ("optimizer", objects.optimizer)):
        if (getattr(config.training, field) == "custom") != (passed is not None):
            raise ConfigError(f"training.{field}: custom is the Python API's {field}=callable; give both or neither")
    callbacks = tuple(callbacks) + logger_callbacks(config, run_dir)
    data = load_data_for(config, objects)
    if exists and objects.data is not None:
        check_same_data(run_dir, data)
    if isinstance(data, Dataset):
        for problem in split_warnings(data):
            warnings.warn(problem, NasforgeWarning, stacklevel=4)
    if config.dataset.test_views and getattr(data, "test_views", None) is None:
        raise ConfigError(f"dataset.test_views: {config.dataset.name!r} has no test-time views (fsdd spectrograms have)")
    space = space_for_run(config, data, space, run_dir if exists else None)
    # A measure read off the genome needs a space that defines it (SearchSpace's default is None).
    for name in sorted(measures_of(parse_constraints(config.constraints)) & set(GENOME_MEASURES)):
        if getattr(type(space), name) is getattr(SearchSpace, name):
            raise ConfigError(f"constraints: the {space.name!r} space has no {name} (the layers space has)")
    given = initial_genomes(config, space)  # before the store exists: a bad entry leaves no half-made run
    t = config.training
    training = training_options(config, data, objects)
    batch_size = training.batch_size
    # its ConfigErrors, too, come before the store
    evaluator = make_evaluator(config, space, data, training, objects, tuple(c for c in callbacks if wants_epochs(c)))
    search_space = screened(config, space, data)
    for i, genome in enumerate(given):
        if (why := search_space.refusal(genome)) is not None:
            cap = compute_cap(config, space)
            limits = [*config.constraints] + ([f"the compute cap space.max_flops: {cap.limit:g}"] if cap and "flops" in why else [])
            raise ConfigError(f"initial_genomes[{i}]: {why} (the constraints {', '.join(limits)}); "
                              "drop it or loosen the constraints")
    record = space_record(space)
    if executor is None and config.executor.name in ("pool", "ray"):  # their workers rebuild the space
        check_portable(space, config.executor.name)
    if t.batch_size == "auto":  # the store records the batch size the study trains with
        config = config.model_copy(update={"training": t.model_copy(update={"batch_size": batch_size})})
    if store is None:
        try:  # before the store: a run whose store exists has its example
            save_example(run_dir, example_of(data, config.dataset.max_length))
        except Exception as exc:
            if not is_write_failure(exc):
                raise
            raise WriteFailed(f"cannot write {run_dir}: {describe_os_error(exc)}; nothing was recorded") from exc
        # Everything a study is, written in one transaction: a store never exists without it.
        store = rundir.create_store({"config": to_dict(config), "dataset": data.summary(), "space": record,
                                     "reward_name": evaluator.reward_name})
    else:
        store.set("config", to_dict(config))  # only budget fields can differ, see resume_config
        store.set("reward_name", evaluator.reward_name)  # "auto" resolved for the task; a custom metric's name
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
        space, strategy, evaluator, store, rundir,
        Budget(config.budget.trials, config.budget.seconds, config.budget.target), seed=config.seed,
        keep_top=config.keep_top, progress=config.progress, callbacks=callbacks,
        final=FinalOptions(epochs=final_epochs, data=t.final_data, ensemble=t.final_ensemble, seeds=t.final_seeds,
                           candidates=final_candidates, test_views=getattr(data, "test_views", None)),
        executor=executor or make_executor(config.executor, evaluator), max_retries=config.executor.max_retries,
        scheduler=scheduler, inherit=default_inherit(t.inherit, evaluator), finetune_epochs=t.finetune_epochs,
        objectives=config.objectives,
    )


def logger_callbacks(config: SearchConfig, run_dir: Path) -> tuple[Any, ...]:
    """The TensorBoard / MLflow loggers the config names (imported only when named)."""
    if not config.loggers:
        return ()
    from .loggers import make_logger

    return tuple(make_logger(name, run_dir) for name in config.loggers)


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


def resume_config(out: str | Path, **overrides: Any) -> SearchConfig:
    """The stored config of a study, with budget / progress overrides."""
    run_dir = check_folder(out, "out")
    if not (run_dir / STORE_FILE).exists():
        raise StoreError(f"cannot resume: {run_dir} holds no study ({run_dir / STORE_FILE} is missing)")
    store = Store.in_dir(run_dir)  # read-only, checked: a store without its config is refused, never filled in
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


def search(config: SearchConfig | dict[str, Any] | str | Path | None = None, *, data: Any = None,
           evaluate: Callable[..., Any] | None = None, resume: bool = False,
           callbacks: tuple[Callable[[Study, TrialRecord], None], ...] | list[Any] = (), **options: Any) -> Study:
    """Run (or resume) a search and return the finished Study (`.best`, `.trials`, `.final`).

    `config` is a SearchConfig, a mapping or a YAML path; keyword options are the CLI's flags
    (dataset=, strategy=, trials=, epochs=, seed=, out=, ...) and override it. `strategy` and
    `executor` may also be objects: a registered name, a class or factory (`Strategy` subclass,
    `(space, seed, **options) -> Strategy`), or an instance used as it is. `space=` also takes your
    own space as an object: a model function `f(c: nasforge.Choices) -> nn.Module`, a SearchSpace
    instance, class or factory (docs/how-to/own-model.md); to resume such a run in a new process,
    pass it again where its module cannot be imported.
    `data`: a built-in name or path (as dataset=), or the data itself: (x, y) arrays or tensors, a dict
    of splits, a torch Dataset or DataLoader (see docs/how-to/own-data.md).
    `evaluate`: your own training, evaluate(model, ctx) -> score (docs/how-to/own-training.md).
    `loss=`, `optimizer=` and `reward=` take callables as well as names (a callable reward is a
    metric(y_true, y_score), maximised unless reward_direction="min").
    `callbacks`: functions fn(study, record) called after each trial, or nasforge.Callback objects.
    """
    objects, options = user_objects(data, evaluate, options, resume)
    instances = _adopt(options)
    space = options.get("space")
    if space is not None and not isinstance(space, str):
        options["space"] = None if resume else space_reference(space)
    else:
        space = None
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
    study = build_study(cfg, resume=resume, callbacks=tuple(callbacks), space=space, objects=objects, **instances)
    return study.run()


__all__ = ["UserObjects", "build_study", "parse_config", "resume_config", "search"]
