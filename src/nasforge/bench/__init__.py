"""Benchmark harness: strategies x seeds over a tabular benchmark, with published numbers and peers."""

from .harness import DEFAULT_STRATEGIES, NB201_COST, BenchReport, BenchSettings, StrategyResult, run_bench, run_once
from .report import format_table, write_json, write_plot

__all__ = [
    "DEFAULT_STRATEGIES", "NB201_COST", "BenchReport", "BenchSettings", "StrategyResult", "format_table", "run_bench", "run_once",
    "write_json", "write_plot",
]
