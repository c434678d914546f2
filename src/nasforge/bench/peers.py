"""Optuna's samplers as peers: the same decisions, table, budget and seeds as our strategies.

Optuna is an optional extra (`pip install 'nasforge[bench]'`); this module imports it lazily.
"""

from __future__ import annotations

import time

from ..budget import Budget
from ..evaluate.tabular import TabularBenchmark, TabularEvaluator
from ..space.base import SearchSpace
from ..strategy.decisions import decision_sizes
from .runs import MAX_REPEATS, RunResult, Tracker


def run_optuna(name: str, bench: TabularBenchmark, space: SearchSpace, budget: Budget, seed: int) -> RunResult:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sizes = decision_sizes(space, name)
    evaluator = TabularEvaluator(bench, space, budget)
    tracker = Tracker(bench)
    start, cpu = time.perf_counter(), time.process_time()
    sampler = optuna.samplers.TPESampler(seed=seed) if name == "tpe" else optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    repeats = 0
    while not evaluator.exhausted and repeats < MAX_REPEATS:
        trial = study.ask()
        choices = [trial.suggest_categorical(f"d{i}", list(range(n))) for i, n in enumerate(sizes)]
        answer = evaluator.query(space.decode(choices))
        tracker.seen(answer.row, answer.new)
        repeats = 0 if answer.new else repeats + 1
        if answer.reward is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, answer.reward)
    return tracker.result(seed, evaluator, time.perf_counter() - start, time.process_time() - cpu)
