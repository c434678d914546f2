"""A real search end to end: quality, failures, stopping, dedup, resume after a kill, export."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import nasforge
from nasforge.api import build_study
from nasforge.config import build_config
from nasforge.strategy.base import Candidate, Strategy

SMALL = dict(max_blocks=3, progress=False)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    study = nasforge.search(dataset="digits", strategy="evolution", population=5, sample_size=2, trials=12, epochs=5,
                            seed=0, out=str(out), progress=False)
    return study, out


@pytest.mark.slow
def test_search_on_digits_finds_an_accurate_model(digits_run) -> None:
    study, _ = digits_run
    assert len(study.trials) == 12 and study.stop_reason == "trials"
    assert {t.status for t in study.trials} <= {"complete", "failed"}
    assert study.final["test"]["accuracy"] >= 0.90
    # Evolution really evolved: children name their parent and the operator that made them.
    children = [t for t in study.trials if t.parents]
    assert children and all(t.operator.split(":")[0] in {"insert", "delete", "replace", "change", "resample"} for t in children)
    best = study.best
    m = best.metrics
    assert {"accuracy", "precision", "recall", "f1", "loss", "confusion"} <= set(m)
    assert np.array(m["confusion"]).sum() == len(study.evaluator.data.y_val)
    # Inheritance is on by default: a child that inherited fine-tunes 2 epochs, the rest train 5.
    assert any("inherited_from" in t.metrics for t in children)
    assert best.params > 0 and best.train_seconds > 0 and len(best.curve) == (2 if "inherited_from" in m else 5)


@pytest.mark.slow
def test_export_and_load_give_the_same_model(digits_run, tmp_path) -> None:
    study, out = digits_run
    subprocess.run([sys.executable, "-m", "nasforge.cli", "export", str(out), "--best", "--out", str(tmp_path / "m")], check=True,
                   capture_output=True)
    assert {p.name for p in (tmp_path / "m").iterdir()} >= {"weights.pt", "genome.json", "model.py"}
    model = nasforge.load(tmp_path / "m")
    x = study.evaluator.data.x_test[:16]
    with torch.no_grad():
        assert torch.equal(model(x), study.best_model()(x))
    meta = json.loads((tmp_path / "m" / "genome.json").read_text())
    assert meta["trial"] == study.final["trial"] and meta["test"]["accuracy"] == study.final["test"]["accuracy"]


@pytest.mark.slow
def test_show_json_lists_every_trial(digits_run) -> None:
    _, out = digits_run
    shown = subprocess.run([sys.executable, "-m", "nasforge.cli", "show", str(out), "--json"], check=True, capture_output=True, text=True)
    rows = json.loads(shown.stdout)
    assert sorted(r["id"] for r in rows) == list(range(1, 13))
    assert rows[0]["rank"] == 1 and rows[0]["reward"] == max(r["reward"] for r in rows if r["reward"] is not None)
    assert all({"id", "status", "reward", "metrics", "params", "parents", "operator"} <= set(r) for r in rows)
    table = subprocess.run([sys.executable, "-m", "nasforge.cli", "show", str(out)], check=True, capture_output=True, text=True).stdout
    assert "rank" in table and "operator" in table and len(table.splitlines()) >= 14


def test_failing_candidates_are_recorded_and_the_search_goes_on(tmp_path) -> None:
    config = build_config(dataset="digits", strategy="random", trials=6, epochs=2, seed=1, out=str(tmp_path / "r"), **SMALL)
    study = build_study(config)
    space = study.space

    class FlakySpace:  # the evaluator's view of the space: every 1st and 2nd of 3 builds blow up
        calls = 0

        def __getattr__(self, name):
            return getattr(space, name)

        def build(self, genome):
            if torch.get_default_device().type == "meta":
                return space.build(genome)  # the memory guard's shape-only copy: not a build that can fail
            FlakySpace.calls += 1
            if FlakySpace.calls % 3 == 1:
                raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (simulated)")
            if FlakySpace.calls % 3 == 2:
                raise MemoryError
            return space.build(genome)

    study.evaluator.space = FlakySpace()
    study.run()
    trials = study.trials
    assert len(trials) == 6
    errors = [t.error for t in trials if t.status == "failed"]
    assert any("shapes cannot be multiplied" in e for e in errors) and "out of memory" in errors
    assert sum(t.status == "complete" for t in trials) == 2


def test_diverging_and_slow_candidates_fail_with_reasons(tmp_path) -> None:
    config = build_config(dataset="digits", strategy="random", trials=2, epochs=2, seed=2, out=str(tmp_path / "a"), **SMALL)
    study = build_study(config)
    study.evaluator.data.x_train[3, 0, 2, 2] = float("nan")  # one poisoned sample: the loss goes NaN
    study.run()
    # A diverging candidate is stopped early ("pruned") with its reason and partial curve; not fatal.
    assert [t.status for t in study.trials] == ["pruned", "pruned"]
    assert all("training loss became nan" in t.error and t.reward is None for t in study.trials)
    study = nasforge.search(dataset="digits", strategy="random", trials=2, epochs=50, trial_timeout=0.05, seed=2,
                            out=str(tmp_path / "b"), **SMALL)
    assert [t.status for t in study.trials] == ["failed", "failed"]
    assert all("time limit" in t.error for t in study.trials) and study.final is None


class _Stubborn(Strategy):
    """Always proposes the same genome."""

    def __init__(self, space, seed=0):
        super().__init__(space, seed)
        self.genome = space.sample(self.rng)
        self.told = 0

    def ask(self):
        return Candidate(self.genome)

    def tell(self, trial, candidate, reward):
        self.told += 1


def test_identical_genomes_are_not_trained_twice(tmp_path) -> None:
    config = build_config(dataset="digits", strategy="random", trials=5, epochs=1, out=str(tmp_path / "r"), **SMALL)
    study = build_study(config)
    study.strategy = _Stubborn(study.space)
    study.run()
    assert len(study.trials) == 1 and study.stop_reason == "exhausted"
    assert study.strategy.told > 100  # every duplicate was told the stored result instead of training


@pytest.mark.slow
def test_time_and_target_budgets_stop_the_search(tmp_path) -> None:
    study = nasforge.search(dataset="digits", strategy="random", trials=1000, seconds=2, epochs=1, seed=0, out=str(tmp_path / "t"),
                            **SMALL)
    assert study.stop_reason == "seconds" and 1 <= len(study.trials) < 1000
    study = nasforge.search(dataset="digits", strategy="random", trials=1000, target=0.3, epochs=3, seed=0, out=str(tmp_path / "g"),
                            **SMALL)
    assert study.stop_reason == "target" and study.best.reward >= 0.3 and len(study.trials) < 1000


def _trials(db) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT id, genome, status, reward FROM trials ORDER BY id").fetchall()


@pytest.mark.slow
def test_resume_after_kill_loses_nothing_and_matches_an_uninterrupted_run(tmp_path) -> None:
    args = ["--dataset", "digits", "--strategy", "evolution", "--population", "4", "--sample-size", "2", "--trials", "9",
            "--epochs", "3", "--max-blocks", "3", "--seed", "5", "--progress", "false"]
    cli = [sys.executable, "-m", "nasforge.cli", "search"]
    run = tmp_path / "killed"
    db = run / "study.sqlite"
    proc = subprocess.Popen(cli + args + ["--out", str(run)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    before = []
    while time.time() < deadline:
        time.sleep(0.2)
        if db.exists():
            try:
                before = _trials(db)
            except sqlite3.OperationalError:
                continue
            done = [t for t in before if t[2] == "complete"]
            if len(done) >= 4 and before[-1][2] == "running":
                os.kill(proc.pid, signal.SIGKILL)  # mid-trial, no chance to clean up
                break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the search finished before it could be killed"
    completed_before = [t for t in _trials(db) if t[2] != "running"]

    resumed = subprocess.run(cli + ["--resume", "--out", str(run), "--progress", "false"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    after = _trials(db)
    assert len(after) == 9 and all(t[2] != "running" for t in after)
    assert after[: len(completed_before)] == completed_before  # no completed trial lost or changed
    assert len({t[1] for t in after}) == 9  # and none duplicated

    clean = subprocess.run(cli + args + ["--out", str(tmp_path / "clean")], capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr
    reference = _trials(tmp_path / "clean" / "study.sqlite")
    assert [t[1] for t in after] == [t[1] for t in reference]  # the same search, exactly
    assert [t[3] for t in after] == pytest.approx([t[3] for t in reference])


def test_a_copied_run_resumes_in_its_new_directory(tmp_path) -> None:
    import shutil

    first = tmp_path / "first"
    nasforge.search(dataset="digits", trials=2, epochs=1, max_blocks=2, seed=0, out=str(first), progress=False)
    copy = tmp_path / "copy"
    shutil.copytree(first, copy)
    before = _trials(first / "study.sqlite")
    study = nasforge.search(resume=True, out=str(copy), trials=3, progress=False)
    assert study.run_dir == copy and len(_trials(copy / "study.sqlite")) == 3
    assert _trials(first / "study.sqlite") == before  # the original run is left as it was


@pytest.mark.slow
def test_resume_refuses_changes_to_the_study(tmp_path, digits_run) -> None:
    _, out = digits_run
    res = subprocess.run([sys.executable, "-m", "nasforge.cli", "search", "--resume", "--out", str(out), "--epochs", "9"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "epochs" in res.stderr
    res = subprocess.run([sys.executable, "-m", "nasforge.cli", "search", "--dataset", "digits", "--out", str(out)],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "already holds a study" in res.stderr
