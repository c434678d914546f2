"""Wiring: a SearchConfig becomes a Study (space, strategy, evaluator, store). Used by search() and the CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import SearchConfig, build_config, parse_config, read_yaml, to_dict
from .data import load_dataset
from .errors import ConfigError, StoreError
from .evaluate.evaluator import TrainingEvaluator
from .evaluate.trainer import TrainingOptions
from .space import LayerGraphSpace, LayerSpaceOptions, SearchSpace
from .store import STORE_FILE, Store, TrialRecord
from .strategy import STRATEGIES, GeneticAlgorithm, RegularizedEvolution, Strategy
from .strategy.operators import SELECTIONS, Tournament
from .study import Budget, Study

# Fields a resumed search may change: the budget and how it is shown. Everything else is the study's.
RESUMABLE = {"trials", "seconds", "target", "progress"}


def make_strategy(config: SearchConfig, space: SearchSpace) -> Strategy:
    s = config.strategy
    if s.name == "evolution":
        return RegularizedEvolution(space, config.seed, population=s.population, sample_size=s.sample_size)
    if s.name == "genetic":
        selection = Tournament(s.tournament_size) if s.selection == "tournament" else SELECTIONS[s.selection]()
        return GeneticAlgorithm(space, config.seed, population=s.population, selection=selection, elitism=s.elitism,
                                crossover_rate=s.crossover_rate, mutation_rate=s.mutation_rate)
    return STRATEGIES[s.name](space, config.seed)


def make_space_for(config: SearchConfig, input_shape: tuple[int, ...], num_classes: int) -> SearchSpace:
    options = config.space.model_dump(exclude={"name"})
    return LayerGraphSpace(input_shape, num_classes, LayerSpaceOptions(**options))


def build_study(config: SearchConfig, resume: bool = False, callbacks: tuple[Callable[[Study, TrialRecord], None], ...] = ()) -> Study:
    run_dir = Path(config.out)
    exists = (run_dir / STORE_FILE).exists()
    if exists and not resume:
        raise ConfigError(f"out: {run_dir} already holds a study; resume it with --resume or choose another --out")
    if resume and not exists:
        raise StoreError(f"cannot resume: {run_dir} holds no study ({run_dir / STORE_FILE} is missing)")
    d = config.dataset
    data = load_dataset(d.name, val_fraction=d.val_fraction, test_fraction=d.test_fraction, seed=d.split_seed,
                        label_column=d.label_column, layout=d.layout)
    space = make_space_for(config, data.input_shape, data.num_classes)
    t = config.training
    training = TrainingOptions(epochs=t.epochs, batch_size=t.batch_size, lr=t.lr, weight_decay=t.weight_decay,
                               cosine=t.cosine, time_limit=t.trial_timeout)
    store = Store.in_dir(run_dir, create=True)
    if not exists:
        store.set("config", to_dict(config))
        store.set("dataset", data.summary())
        store.set("space", {"name": space.name, "config": space.config()})
    else:
        store.set("config", to_dict(config))  # only budget fields can differ, see resume_config
    return Study(
        space, make_strategy(config, space), TrainingEvaluator(space, data, training, config.reward), store, run_dir,
        Budget(config.budget.trials, config.budget.seconds, config.budget.target), seed=config.seed,
        keep_top=config.keep_top, final_epochs=t.final_epochs, progress=config.progress, callbacks=callbacks,
    )


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
    return build_config(stored, **overrides)


def search(config: SearchConfig | dict[str, Any] | str | Path | None = None, *, resume: bool = False,
           callbacks: tuple[Callable[[Study, TrialRecord], None], ...] = (), **options: Any) -> Study:
    """Run (or resume) a search and return the finished Study (`.best`, `.trials`, `.final`).

    `config` is a SearchConfig, a mapping or a YAML path; keyword options are the CLI's flags
    (dataset=, strategy=, trials=, epochs=, seed=, out=, ...) and override it.
    """
    if resume:
        out = options.pop("out", None) or (config.out if isinstance(config, SearchConfig) else None)
        if out is None:
            raise ConfigError("out: give the run directory of the study to resume")
        cfg = resume_config(out, **options)
    elif isinstance(config, SearchConfig):
        cfg = build_config(to_dict(config), **options)
    elif isinstance(config, (str, Path)):
        cfg = build_config(read_yaml(config), **options)
    else:
        cfg = build_config(config, **options)
    study = build_study(cfg, resume=resume, callbacks=callbacks)
    return study.run()


__all__ = ["build_study", "make_strategy", "parse_config", "resume_config", "search"]
