"""Tabular evaluation: any table of the same form, safe cost expressions, budgets."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

from nasforge.bench import BenchSettings, run_bench
from nasforge.budget import Budget
from nasforge.errors import ConfigError, DataError
from nasforge.evaluate.tabular import CostExpression, TabularEvaluator, load_benchmark
from nasforge.space import CellSpace

NB201 = Path(os.environ.get("NASFORGE_DATA", Path(__file__).parents[1].parent / "shared/data")) / "nb201/nb201.csv"
A = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
B = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
C = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"


@pytest.fixture
def nb201() -> Path:
    if not NB201.is_file():
        pytest.skip(f"NB201 table not found at {NB201} (set NASFORGE_DATA to the shared data folder)")
    return NB201


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.csv"
    path.write_text("cell,acc,final,train_s,eval_s,lat\n"
                    f"{A},80.5,93.9,10,2,1.5\n{B},10.0,10.0,1,1,0.1\n{C},50.0,60.0,4,1,0.7\n")
    return path


def test_cost_expressions_are_parsed_never_executed() -> None:
    cols = {"a": np.array([1.0, 2.0]), "b": np.array([3.0, 4.0])}
    assert CostExpression("12*a + b").evaluate(cols).tolist() == [15.0, 28.0]
    assert CostExpression("-(a - b) / 2").evaluate(cols).tolist() == [1.0, 1.0]
    assert CostExpression("12*a + b").columns == ["a", "b"]
    for bad in ("__import__('os').system('true')", "a ** 2", "a.real", "max(a, b)", "a if b else 1", "'x'"):
        with pytest.raises(ConfigError, match="not allowed"):
            CostExpression(bad)
    with pytest.raises(ConfigError, match="not an arithmetic expression"):
        CostExpression("12 *")


def test_tiny_table_queries_budget_and_repeats(tiny: Path) -> None:
    bench = load_benchmark(tiny, arch_column="cell", signal="acc", report="final", cost="train_s*2 + eval_s", objectives=["lat"])
    space = CellSpace()
    ev = TabularEvaluator(bench, space, Budget(seconds=25.0))
    first = ev.evaluate(space.from_json(A))
    assert first.status == "complete" and first.reward == 80.5 and first.cost == 22.0
    assert first.metrics == {"acc": 80.5, "lat": 1.5}
    again = ev.evaluate(space.from_json(A))
    assert again.reward == 80.5 and again.cost == 0.0 and ev.queries == 1 and ev.seconds == 22.0
    assert not ev.exhausted
    ev.evaluate(space.from_json(C))  # crosses the budget: it still counts, as in NB201
    assert ev.exhausted and ev.queries == 2 and ev.seconds == 31.0
    missing = ev.evaluate(space.sample(np.random.default_rng(0)))
    assert missing.status == "failed" and "is not in tiny.csv" in missing.error
    assert ev.report(space.from_json(A)) == 93.9  # the report column, for the answer only
    assert bench.ceiling() == 93.9


def test_bad_columns_name_the_column_and_list_the_others(tiny: Path) -> None:
    with pytest.raises(DataError, match=r"no column 'accuracy'; available: cell, acc, final"):
        load_benchmark(tiny, arch_column="cell", signal="accuracy", report="final")
    with pytest.raises(DataError, match="no column 'arch_str'"):
        load_benchmark(tiny, signal="acc", report="final")
    with pytest.raises(DataError, match="no column 'gpu_s'"):
        load_benchmark(tiny, arch_column="cell", signal="acc", report="final", cost="gpu_s + 1")
    with pytest.raises(DataError, match=r"column 'cell', row 2: .* is not a number"):
        load_benchmark(tiny, arch_column="cell", signal="cell", report="final")


def _renamed_copy(src: Path, dst: Path) -> None:
    names = {"arch_str": "genotype", "c10_valid_12ep": "proxy_acc", "c10_test_200ep_mean": "final_acc",
             "c10valid_train_s_per_epoch": "epoch_seconds", "c10valid_valid_s_per_eval": "eval_seconds"}
    with src.open(newline="") as f, dst.open("w", newline="") as g:
        reader = csv.DictReader(f)
        writer = csv.writer(g)
        order = list(names)[::-1]  # another column order too
        writer.writerow([names[c] for c in order])
        for row in reader:
            writer.writerow([row[c] for c in order])


def test_renamed_table_runs_unchanged(nb201: Path, tmp_path: Path) -> None:
    """A user's table of the same form with other column names gives the very same results."""
    renamed = tmp_path / "mine.csv"
    _renamed_copy(nb201, renamed)
    common = {"runs": 2, "seed": 3, "strategies": ("random", "rea", "predictor"), "queries": 40, "seconds": 6000.0}
    ours = run_bench(BenchSettings(table=str(renamed), arch_column="genotype", signal="proxy_acc", report="final_acc",
                                   cost="12*epoch_seconds + eval_seconds", **common))
    ref = run_bench(BenchSettings(table=str(nb201), **common))
    for name in common["strategies"]:
        assert [r.value for r in ours.results[name].runs] == [r.value for r in ref.results[name].runs]
        assert [r.queries for r in ours.results[name].runs] == [r.queries for r in ref.results[name].runs]
