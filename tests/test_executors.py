"""Executors: a local process pool and Ray run the same search as the serial loop, survive workers
that die mid-trial, stop cleanly on Ctrl-C and resume."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

import nasforge
from nasforge.api import build_study, resume_config
from nasforge.config import build_config
from nasforge.errors import ConfigError
from nasforge.evaluate.evaluator import Evaluator, Result
from nasforge.execute import PoolExecutor, SerialExecutor, make_executor
from nasforge.execute.base import ExecutorError
from nasforge.store import Store

SMALL = dict(dataset="digits", max_blocks=3, epochs=1, seed=0, progress=False)


def _rows(trials) -> list[tuple]:
    return [(t.id, t.genome_key, t.seed, t.status, t.reward, t.attempts) for t in trials]


class FlakyEvaluator(Evaluator):
    """Wraps a real evaluator. The trial with seed `hang` announces its worker's pid and hangs until
    the test kills that process (once); the trial with seed `die` kills its own worker every time."""

    def __init__(self, inner: Evaluator, folder: Path, hang: int | None = None, die: int | None = None):
        self.inner, self.folder, self.hang, self.die = inner, folder, hang, die

    def evaluate(self, genome, seed: int, *args, **kwargs) -> Result:
        marker = self.folder / "hanging"
        if seed == self.hang and not marker.exists():
            tmp = self.folder / "hanging.tmp"
            tmp.write_text(str(os.getpid()))
            tmp.replace(marker)
            time.sleep(300)
        if seed == self.die:
            os.kill(os.getpid(), signal.SIGKILL)
        return self.inner.evaluate(genome, seed, *args, **kwargs)


class _Killer(threading.Thread):
    """Kills the worker that announces itself in `folder/hanging`, however long the executor takes to
    start it (a loaded machine starts Ray in minutes, not seconds); `stop()` ends the wait."""

    def __init__(self, folder: Path):
        super().__init__(daemon=True)
        self.marker, self.stopped = folder / "hanging", threading.Event()
        self.start()

    def run(self) -> None:
        while not self.marker.exists():
            if self.stopped.wait(0.05):
                return
        os.kill(int(self.marker.read_text()), signal.SIGKILL)

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)


def _all_gone(pids, wait: float = 10.0) -> bool:
    pids = list(pids)
    deadline = time.monotonic() + wait
    while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not any(Path(f"/proc/{pid}").exists() for pid in pids)


# -- configuration --------------------------------------------------------------------------------
def test_executor_config_and_flags(tmp_path) -> None:
    assert build_config({}).executor.name == "serial"
    pool = build_config({}, executor="pool", workers=2, threads=1, max_retries=3).executor
    assert (pool.name, pool.workers, pool.threads, pool.max_retries) == ("pool", 2, 1, 3)
    assert build_config({}, workers=3).executor.name == "pool"  # several workers mean a pool
    assert build_config({"executor": "ray"}).executor.name == "ray"  # YAML shorthand
    ray = build_config({}, executor="ray", address="auto", cpus_per_trial=0.5, gpus_per_trial=0.25).executor
    assert (ray.address, ray.cpus_per_trial, ray.gpus_per_trial) == ("auto", 0.5, 0.25)
    for bad, field in [({"executor": {"name": "serial", "workers": 2}}, "workers"),
                       ({"executor": {"name": "pool", "address": "auto"}}, "address"),
                       ({"executor": {"name": "ray", "threads": 2}}, "threads"),
                       ({"executor": {"name": "serial", "threads": 2}}, "threads"),
                       ({"executor": {"name": "dask"}}, "executor.name"),
                       ({"executor": {"name": "pool", "workers": 0}}, "executor.workers"),
                       ({"executor": {"name": "pool", "wrokers": 2}}, "wrokers")]:
        with pytest.raises(ConfigError, match=field):
            build_config(bad)
    # The CLI builds its flags from the same table.
    from nasforge.cli import build_parser

    args = build_parser().parse_args(["search", "--executor", "ray", "--address", "10.0.0.1:6379", "--gpus-per-trial", "0.5"])
    assert (args.executor, args.address, args.gpus_per_trial) == ("ray", "10.0.0.1:6379", 0.5)

    # Wiring: the study gets the executor its config names (nothing starts before the search).
    study = build_study(build_config({}, out=str(tmp_path / "a"), executor="pool", workers=2, max_retries=4, **SMALL))
    assert isinstance(study.executor, PoolExecutor) and study.executor.capacity == 2 and study.max_retries == 4
    assert study.executor.threads == max(1, len(os.sched_getaffinity(0)) // 2)
    study.store.close()
    # A study may resume elsewhere: the executor is not part of what a study is.
    study = build_study(build_config({}, out=str(tmp_path / "b"), **SMALL))
    study.store.close()
    resumed = resume_config(tmp_path / "b", executor="pool", workers=2)
    assert resumed.executor.name == "pool" and resumed.executor.workers == 2


def test_ray_address_nobody_answers_fails_fast() -> None:
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'nasforge[ray]'")
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    executor = make_executor(build_config({}, executor="ray", address=f"127.0.0.1:{port}").executor, evaluator=None)
    with pytest.raises(ExecutorError, match="nothing answers at 127.0.0.1"):
        executor.capacity  # noqa: B018 - starting is what is tested


def test_ray_missing_names_the_fix(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without Ray sees
    config = build_config({}, executor="ray").executor
    with pytest.raises(ExecutorError, match=r"pip install 'nasforge\[ray\]'"):
        make_executor(config, evaluator=None)


# -- the process pool -----------------------------------------------------------------------------
@pytest.mark.slow
def test_pool_search_records_what_the_serial_search_records(tmp_path) -> None:
    """Random search is order-independent: two workers must record the same trials, genomes, seeds
    and (one torch thread each, as here) the same rewards as the serial loop; and the store they
    leave is what a resume reads."""
    assert torch.get_num_threads() == 1  # conftest: the serial reference also trains on one thread
    options = dict(strategy="random", trials=4, **SMALL)
    serial = nasforge.search(out=str(tmp_path / "serial"), **options)
    seen: set[int] = set()
    pool = nasforge.search(out=str(tmp_path / "pool"), executor="pool", workers=2, threads=1,
                           callbacks=(lambda study, _: seen.update(study.executor.pids().values()),), **options)
    assert isinstance(serial.executor, SerialExecutor) and isinstance(pool.executor, PoolExecutor)
    assert pool.stop_reason == "trials" and len(pool.trials) == 4
    assert _rows(pool.trials) == _rows(serial.trials)
    assert all(t.status == "complete" and t.attempts == 1 for t in pool.trials)
    # Both workers really ran at once: some trials overlap in time.
    spans = sorted((t.started_at, t.finished_at) for t in pool.trials)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:]))
    assert pool.final is not None and seen and _all_gone(seen)  # the study closed its pool

    written = [t.to_dict() for t in pool.trials]
    resumed = nasforge.search(resume=True, out=str(tmp_path / "pool"), progress=False)
    assert [t.to_dict() for t in resumed.trials] == written and resumed.stop_reason == "trials"


@pytest.mark.slow
def test_killed_worker_is_retried_and_hopeless_trial_fails(tmp_path) -> None:
    """SIGKILL of the worker mid-trial: the trial runs again and completes. A trial that kills its
    worker on every attempt is recorded as failed with the reason once its retries are spent. All
    other trials are untouched."""
    out = tmp_path / "run"
    study = build_study(build_config({}, out=str(out), strategy="evolution", population=3, sample_size=2, trials=5,
                                     executor="pool", workers=2, max_retries=1, **SMALL))
    # Trial i has seed i for study seed 0: trial 2 is killed once from outside, trial 4 every time.
    study.executor = PoolExecutor(FlakyEvaluator(study.evaluator, tmp_path, hang=2, die=4), workers=2, threads=1)
    killer = _Killer(tmp_path)
    study.run()
    killer.stop()
    trials = {t.id: t for t in study.trials}
    assert sorted(trials) == [1, 2, 3, 4, 5] and study.stop_reason == "trials"
    assert trials[2].status == "complete" and trials[2].attempts == 2
    assert trials[4].status == "failed" and trials[4].attempts == 2
    assert "SIGKILL" in trials[4].error and "gave up after 2" in trials[4].error
    assert all(trials[i].status == "complete" and trials[i].attempts == 1 for i in (1, 3, 5))
    assert study.final is not None


@pytest.mark.slow
def test_ctrl_c_stops_the_pool_cleanly_and_the_study_resumes(tmp_path) -> None:
    """The terminal's Ctrl-C (SIGINT to the whole process group): the CLI exits 130, leaves no
    worker behind, and a resume completes the budget without losing a finished trial. The strategy
    is the generational GA, which answers None while its generation is out: the pool loop must wait
    for a result then, not stop, and later generations must follow."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "nasforge.cli", "search", "--dataset", "digits", "--max-blocks", "3", "--epochs", "1",
           "--strategy", "genetic", "--population", "3", "--trials", "6", "--executor", "pool", "--workers", "2",
           "--progress", "false", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        done = 0
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "study.sqlite").exists():
                store = Store.in_dir(out)
                done = sum(t.status != "running" for t in store.trials())
                store.close()
                if done >= 2:
                    break
            time.sleep(0.2)
        assert done >= 2, proc.communicate(timeout=30)
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err  # workers ignored the SIGINT: no traces of theirs
    assert children and _all_gone(int(pid) for pid in children)

    store = Store.in_dir(out)
    before = {t.id: t.to_dict() for t in store.trials() if t.status != "running"}
    store.close()
    study = nasforge.search(resume=True, out=str(out), progress=False)
    after = {t.id: t.to_dict() for t in study.trials}
    assert sorted(after) == list(range(1, 7)) and all(t.status == "complete" for t in study.trials)
    assert all(after[i] == row for i, row in before.items())
    assert study.stop_reason == "trials" and study.strategy.generation_index >= 2


# -- Ray ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_ray_search_completes_and_survives_a_killed_worker(tmp_path, monkeypatch) -> None:
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'nasforge[ray]'")
    # Ray workers import this module to unpickle FlakyEvaluator.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")])))
    out, ray_dir = tmp_path / "run", tmp_path / "ray"
    home_ray = Path.home() / ".ray"
    had_home_ray, token = home_ray.exists(), os.environ.get("RAY_AUTH_TOKEN")
    study = build_study(build_config({}, out=str(out), strategy="random", trials=4, executor="ray",
                                     ray_temp_dir=str(ray_dir), **SMALL))
    study.executor.evaluator = FlakyEvaluator(study.evaluator, tmp_path, hang=3)
    killer = _Killer(tmp_path)
    study.run()
    killer.stop()
    trials = {t.id: t for t in study.trials}
    assert sorted(trials) == [1, 2, 3, 4] and all(t.status == "complete" for t in trials.values())
    assert trials[3].attempts == 2 and all(trials[i].attempts == 1 for i in (1, 2, 4))
    assert study.executor.capacity == len(os.sched_getaffinity(0))  # one CPU per trial, all of them used
    # The local Ray lived in the folder we gave it, and is gone.
    assert any(ray_dir.glob("session_*"))
    import ray

    assert not ray.is_initialized()
    # Its token lived in the environment of this search only, not in ~/.ray.
    assert home_ray.exists() == had_home_ray and os.environ.get("RAY_AUTH_TOKEN") == token


class DeviceEchoEvaluator(Evaluator):
    """Reports the CUDA devices and torch threads its worker process was given."""

    def evaluate(self, genome, seed: int, *args, **kwargs) -> Result:
        time.sleep(0.3)  # long enough that both workers take a task
        return Result("complete", reward=0.0, metrics={"devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid(),
                                                         "threads": torch.get_num_threads()})


def test_pool_pins_each_worker_to_its_own_gpu() -> None:
    # No GPU here: the device list is given, as visible_gpus() would find it on a 2-GPU machine.
    executor = PoolExecutor(DeviceEchoEvaluator(), workers=2, threads=1, gpus=["3", "5"])
    try:
        for trial in range(1, 5):
            executor.submit(trial, None, seed=trial)
        results = [executor.next_result()[1].metrics for _ in range(4)]
    finally:
        executor.close()
    by_pid = {}
    for m in results:
        by_pid.setdefault(m["pid"], set()).add(m["devices"])
        assert m["threads"] == 1
    # Each worker process saw exactly one device, and the two workers saw different ones.
    assert sorted(d for devices in by_pid.values() for d in devices) == ["3", "5"]
    assert all(len(devices) == 1 for devices in by_pid.values())


class SleepyEvaluator(Evaluator):
    """Seed 2 sleeps far past the time limit; the others return at once."""

    def evaluate(self, genome, seed: int, *args, **kwargs) -> Result:
        if seed == 2:
            time.sleep(300)
        return Result("complete", reward=float(seed), metrics={"pid": os.getpid()})


@pytest.mark.slow
def test_ray_cancels_a_trial_past_its_time_limit_and_goes_on(tmp_path, monkeypatch) -> None:
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'nasforge[ray]'")
    from nasforge.execute.ray import RayExecutor

    # Ray workers import this module to unpickle SleepyEvaluator.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")])))
    executor = RayExecutor(SleepyEvaluator(), num_cpus=2, temp_dir=tmp_path / "ray", time_limit=20.0)
    try:
        executor.submit(1, None, 1)
        executor.submit(2, None, 2)
        first = executor.next_result()
        assert first[0] == 1 and first[1].status == "complete", first[1].error
        trial, result = executor.next_result()
        assert trial == 2 and result.status == "failed" and "time limit exceeded" in result.error
        assert 20 <= result.train_seconds < 30  # stopped at the limit, counted from its start, not after the 300 s sleep
        executor.submit(3, None, 3)  # the slot is free again
        assert executor.next_result()[1].reward == 3.0
    finally:
        executor.close()
