"""The benchmark harness and the strategies it compares: reproducible, resumable, honest output."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from nasforge.bench import BenchSettings, format_table, run_bench
from nasforge.bench import harness as harness_module
from nasforge.cli import main
from nasforge.space import CellSpace, LayerGraphSpace, LayerSpaceOptions
from nasforge.strategy import LocalSearch, PredictorEvolution
from nasforge.strategy.base import Observation

NB201 = Path(os.environ.get("NASFORGE_DATA", Path(__file__).parents[1].parent / "shared/data")) / "nb201/nb201.csv"


@pytest.fixture
def nb201() -> Path:
    if not NB201.is_file():
        pytest.skip(f"NB201 table not found at {NB201} (set NASFORGE_DATA to the shared data folder)")
    return NB201


def _numbers(report) -> dict:
    out = report.to_json()
    for r in out["strategies"].values():
        r.pop("us_per_query")  # wall and CPU time, the only things allowed to differ
        r.pop("cpu_us_per_query")
    return out


def test_fixed_seed_is_reproducible(nb201: Path) -> None:
    settings = BenchSettings(table=str(nb201), runs=2, seed=7, seconds=4000.0,
                             strategies=("random", "rea", "reinforce", "local", "predictor"))
    first, second = run_bench(settings), run_bench(settings)
    assert _numbers(first) == _numbers(second)
    for result in first.results.values():
        for run in result.runs:
            assert run.seconds >= 4000.0 and run.seconds - 4000.0 < 250  # the crossing query counts
            # One point per charged query (the report of the best-by-signal so far, which may fall
            # when a higher signal has a lower report), ending at the returned architecture.
            assert len(run.curve) == run.queries and run.curve[-1] == run.value
    # Different seeds give different searches.
    other = run_bench(BenchSettings(**{**settings.__dict__, "seed": 8}))
    assert _numbers(other)["strategies"]["random"]["values"] != _numbers(first)["strategies"]["random"]["values"]


def test_cli_writes_json_and_plot(nb201: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"
    code = main(["bench", "--table", str(nb201), "--runs", "3", "--queries", "30", "--strategies", "random,rea,tpe",
                 "--seed", "1", "--json", str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    assert set(data) == {"strategies", "settings", "machine"}
    assert data["machine"]["cores"] and len(data["machine"]["load_start"]) == 3  # where and when, for the docs' tables
    for name in ("random", "rea"):
        entry = data["strategies"][name]
        assert {"mean", "std", "runs", "mean_queries", "values"} <= set(entry)
        assert entry["runs"] == 3 and len(entry["values"]) == 3 and entry["mean_queries"] == 30
        assert entry["mean"] == pytest.approx(np.mean(entry["values"]))
    assert data["settings"]["queries"] == 30 and data["settings"]["seconds"] is None
    assert out.with_suffix(".png").stat().st_size > 1000
    printed = capsys.readouterr().out
    assert "published (nb201-cifar10)" in printed and "93.92 ± 0.30" in printed


def test_peers_skip_cleanly_without_optuna(nb201: Path, monkeypatch) -> None:
    monkeypatch.setattr(harness_module, "optuna_available", lambda: False)
    report = run_bench(BenchSettings(table=str(nb201), runs=1, queries=10, seconds=None, strategies=("random", "tpe")))
    assert set(report.results) == {"random"} and "optuna is not installed" in report.skipped["tpe"]
    assert "tpe: skipped" in format_table(report)


def test_bad_settings_are_user_errors(nb201: Path) -> None:
    from nasforge.errors import ConfigError, DataError

    with pytest.raises(ConfigError, match="unknown nope"):
        run_bench(BenchSettings(table=str(nb201), strategies=("nope",)))
    with pytest.raises(ConfigError, match="needs --cost"):
        run_bench(BenchSettings(table=str(nb201), cost=None))
    assert main(["bench", "--table", str(nb201), "--signal", "acc", "--json", "x.json"]) == 2
    with pytest.raises(DataError, match="no column 'acc'"):
        run_bench(BenchSettings(table=str(nb201), signal="acc", runs=1))


def _toy(space, genome) -> float:
    # A smooth landscape with one best cell: count of edges that match a target.
    return float(sum(a == b for a, b in zip(space.encode(genome), [3, 3, 3, 1, 2, 3])))


@pytest.mark.parametrize("factory", [LocalSearch, PredictorEvolution])
def test_local_and_predictor_find_the_toy_optimum_and_resume_exactly(factory) -> None:
    space = CellSpace()
    a = factory(space, seed=3)
    best = 0.0
    for trial in range(1, 61):
        cand = a.ask()
        best = max(best, _toy(space, cand.genome))
        a.tell(trial, cand, Observation(_toy(space, cand.genome)))
        if trial == 40:
            b = factory(space, seed=0)
            b.load_state_dict(json.loads(json.dumps(a.state_dict())))
        if trial > 40:
            cb = b.ask()
            assert cb.genome == cand.genome
            b.tell(trial, cb, Observation(_toy(space, cb.genome)))
    assert best == 6.0  # 15,625 cells, 60 queries: random search would find it 0.4% of the time


def test_predictor_and_local_search_on_the_layer_graph_space() -> None:
    space = LayerGraphSpace((1, 8, 8), 10, LayerSpaceOptions(min_blocks=1, max_blocks=3, channels=(8, 16)))
    for strategy in (PredictorEvolution(space, seed=0, init=5, pool=200, random_pool=50), LocalSearch(space, seed=0, init=3)):
        seen = set()
        for trial in range(1, 16):
            cand = strategy.ask()
            assert space.problems(cand.genome) == []
            seen.add(space.key(cand.genome))
            strategy.tell(trial, cand, Observation(float(len(cand.genome))))
        assert len(seen) >= 12  # they explore, not repeat
