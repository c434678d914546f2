"""Fault injection: a real (tiny) search killed with SIGKILL at random points, or starved of disk at
random write points, then resumed, must end exactly where an uninterrupted search ends, with no
completed trial lost, changed or duplicated; concurrent writers are refused. Every case ends in a
clear message or a correct result, never a traceback.

The commands run in children forked from one process that imported nasforge once
(tests/fault_runner.py), so a kill point costs the search's own time, not an interpreter start.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nasforge.report.snapshot import read_run
from nasforge.store import STORE_FILE

SEARCH = ["search", "--dataset", "digits", "--strategy", "evolution", "--population", "3", "--sample-size", "2",
          "--trials", "5", "--epochs", "1", "--max-blocks", "2", "--seed", "3", "--keep-top", "2", "--progress", "false"]
RUNNER = Path(__file__).with_name("fault_runner.py")


class Runner:
    def __init__(self) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen([sys.executable, str(RUNNER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def __call__(self, argv: list[str], log: Path, **faults) -> dict:
        job = {"argv": [str(a) for a in argv], "cwd": str(log.parent), "log": str(log), **faults}
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        answer["log"] = log.read_text()
        return answer

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def runner():
    r = Runner()
    yield r
    r.close()


def _state(run: Path) -> dict:
    snap = read_run(run)
    trials = [(t.id, json.dumps(t.genome, sort_keys=True), t.status, t.reward, t.parents, t.operator) for t in snap.trials]
    return {"trials": trials, "final": snap.final}


@pytest.fixture(scope="module")
def reference(runner, tmp_path_factory) -> dict:
    where = tmp_path_factory.mktemp("reference")
    answer = runner(SEARCH + ["--out", where / "run"], where / "log", count=str(where / "events"))
    assert answer["code"] == 0, answer["log"]
    state = _state(where / "run")
    assert len(state["trials"]) == 5 and state["final"] is not None
    assert any(t[4] for t in state["trials"])  # children of earlier trials: inheritance and pruning are exercised
    return {"dir": where / "run", "events": int((where / "events").read_text()), **state,
            "final.pt": torch.load(where / "run" / "final.pt", weights_only=True)}


def _finished(run: Path) -> list[tuple]:
    if not (run / STORE_FILE).exists():
        return []
    return [t for t in _state(run)["trials"] if t[2] != "running"]


def _assert_same_as_reference(run: Path, reference: dict, finished_before: list[tuple]) -> None:
    state = _state(run)
    got, want = state["trials"], reference["trials"]
    assert [t[:3] + t[4:] for t in got] == [t[:3] + t[4:] for t in want]  # same trials, same order, no duplicate
    assert [t[3] for t in got] == pytest.approx([t[3] for t in want])
    assert all(t in got for t in finished_before)  # nothing that had finished was lost or changed
    assert state["final"]["trial"] == reference["final"]["trial"]
    assert state["final"]["test"]["accuracy"] == pytest.approx(reference["final"]["test"]["accuracy"])
    final = torch.load(run / "final.pt", weights_only=True)
    assert final.keys() == reference["final.pt"].keys()
    assert all(torch.allclose(final[k].float(), reference["final.pt"][k].float()) for k in final)
    leftovers = [p.name for p in [*run.glob(".*"), *run.glob("weights/.*")]]
    assert leftovers == [], leftovers  # no temporary file left behind
    assert (run / "study.lock").read_text() == ""


def _recover(runner, run: Path, reference: dict, first: dict) -> None:
    """After a killed or failed search: resume it (or start it again when no store was made)."""
    assert "Traceback" not in first["log"], first["log"]
    finished = _finished(run)
    argv = ["search", "--resume", "--out", run, "--progress", "false"] if (run / STORE_FILE).exists() else SEARCH + ["--out", run]
    answer = runner(argv, run.parent / "resume.log")
    assert answer["code"] == 0 and "Traceback" not in answer["log"], answer["log"]
    _assert_same_as_reference(run, reference, finished)


def _kill_points(reference: dict, count: int, seed: int) -> list[int]:
    """`count` distinct write events, always with the first (the store's creation) and the last two
    (the final model and its record), the rest at random."""
    n = reference["events"]
    rest = random.Random(seed).sample(range(2, n - 1), min(count - 3, n - 3))
    return sorted({1, n - 1, n, *rest})


def _kill_then_resume(runner, reference, where: Path, **fault) -> None:
    where.mkdir()
    first = runner(SEARCH + ["--out", where / "run"], where / "first.log", **fault)
    if "kill_at" in fault:
        assert first["signal"] == signal.SIGKILL, first
    _recover(runner, where / "run", reference, first)


def test_a_search_killed_at_random_write_points_resumes_to_the_same_result(runner, reference, tmp_path) -> None:
    for point in _kill_points(reference, 4, seed=0):
        _kill_then_resume(runner, reference, tmp_path / f"at{point}", kill_at=point)


@pytest.mark.slow
def test_a_search_killed_at_many_random_points_resumes_to_the_same_result(runner, reference, tmp_path) -> None:
    points = _kill_points(reference, 16, seed=1)
    for point in points:
        _kill_then_resume(runner, reference, tmp_path / f"at{point}", kill_at=point)
    rng = random.Random(2)
    for i in range(6):  # at random moments: mostly inside training
        _kill_then_resume(runner, reference, tmp_path / f"after{i}", kill_after=rng.uniform(0.5, 4.0))
    assert len(points) + 6 >= 20


def test_an_export_killed_midway_leaves_no_half_export(runner, reference, tmp_path) -> None:
    from nasforge.export import load

    out = tmp_path / "model"
    for point in (1, 2):  # before the weights are copied; before the folder is renamed into place
        answer = runner(["export", reference["dir"], "--out", out], tmp_path / "export.log", kill_at=point)
        assert answer["signal"] == signal.SIGKILL
        assert not out.exists()
    answer = runner(["export", reference["dir"], "--out", out], tmp_path / "export.log")
    assert answer["code"] == 0, answer["log"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # the killed attempts' folders went
    model = load(out)
    assert all(torch.equal(v, reference["final.pt"][k]) for k, v in model.state_dict().items())


def _disk_full_then_resume(runner, reference, where: Path, limit: int) -> None:
    where.mkdir()
    first = runner(SEARCH + ["--out", where / "run"], where / "first.log", fsize=limit)
    if first["code"] == 2:
        assert "cannot " in first["log"] and "disk is full" in first["log"], first["log"]
        if (where / "run" / STORE_FILE).exists() and "safe" in first["log"]:
            assert "--resume" in first["log"]
    else:
        assert first["code"] == 0, first["log"]  # the limit was never reached
    _recover(runner, where / "run", reference, first)


def test_a_full_disk_ends_the_search_in_one_line_and_resume_continues(runner, reference, tmp_path) -> None:
    for limit in (30_000, 150_000):
        _disk_full_then_resume(runner, reference, tmp_path / f"limit{limit}", limit)


@pytest.mark.slow
def test_a_disk_that_fills_at_random_write_points(runner, reference, tmp_path) -> None:
    sizes = [p.stat().st_size for p in reference["dir"].rglob("*") if p.is_file()]
    rng = random.Random(3)
    for i in range(10):
        _disk_full_then_resume(runner, reference, tmp_path / f"fill{i}", rng.randint(2_000, max(sizes) + 50_000))


def test_concurrent_writers_one_runs_the_other_is_refused(reference, tmp_path) -> None:
    cli = [sys.executable, "-m", "nasforge.cli"]
    run = tmp_path / "run"
    procs = [subprocess.Popen(cli + SEARCH + ["--out", str(run), "--seed", str(seed)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for seed in (0, 1)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert all("Traceback" not in err for _, err in results)
    if codes == [0, 0]:  # the second started after the first had finished: it must then refuse the existing study
        pytest.fail("both searches ran on one run directory")
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert "being written by another search: pid " in refused or "already holds a study" in refused
    seeds = {t.seed for t in read_run(run).trials}
    winner = next(seed for seed, (code, _) in zip((0, 1), results) if code == 0)
    from nasforge.study import trial_seed

    assert seeds == {trial_seed(winner, i) for i in range(1, 6)}  # one study's trials only
