"""One search run over a tabular benchmark: what it returned, and the tracker that records it
(shared by our strategies' loop in harness.py and the Optuna peers' in peers.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..evaluate.tabular import TabularBenchmark, TabularEvaluator

# Consecutive repeated queries after which a run stops: the strategy keeps proposing what it has
# seen (a converged policy, an exhausted neighbourhood) and repeats cost nothing, so it would spin.
MAX_REPEATS = 500


@dataclass
class RunResult:
    seed: int
    value: float | None  # report column of the returned architecture
    signal: float | None
    arch: str | None
    queries: int
    seconds: float
    framework_s: float  # wall time of the loop: strategy, look-ups and bookkeeping
    curve: list[float] = field(default_factory=list)  # best-so-far report value after each query
    cpu_s: float = 0.0  # CPU time of the same loop


class Tracker:
    """Best by signal (first found on ties) and the best-so-far report curve of one run."""

    def __init__(self, bench: TabularBenchmark):
        self.bench = bench
        self.row: int | None = None
        self.curve: list[float] = []

    def seen(self, row: int | None, new: bool) -> None:
        if row is not None and new:
            signal = self.bench.signal[row]
            if self.row is None or signal > self.bench.signal[self.row]:
                self.row = row
        if new:
            self.curve.append(float(self.bench.report_values[self.row]) if self.row is not None else math.nan)

    def result(self, seed: int, evaluator: TabularEvaluator, framework_s: float, cpu_s: float = 0.0) -> RunResult:
        row = self.row
        return RunResult(
            seed, None if row is None else float(self.bench.report_values[row]), None if row is None else float(self.bench.signal[row]),
            None if row is None else self.bench.table.archs[row], evaluator.queries, evaluator.seconds, framework_s, self.curve, cpu_s,
        )
