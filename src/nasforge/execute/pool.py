"""A local process pool: N persistent worker processes, each owning its share of the cores.

Facts that shape it (measured on 2 cores): two processes with one torch thread each beat one
process with two threads, while oversubscribed threads are 2-4x slower; so every worker gets
cores // N threads. A process forked after torch has run can deadlock, and a fresh Python + torch
+ nasforge costs seconds; so workers come from a forkserver (a clean process that imported
torch and nasforge once and never ran torch), or are spawned where there is none, and are kept
across trials. The evaluator (with its dataset) is pickled once and handed to each worker when it
starts, never per trial.

Each worker has its own pipe, so the driver always knows which trial a worker holds: when a
worker dies (SIGKILL, the OOM killer) exactly that trial comes back as LOST and the study decides
whether to run it again. With a `time_limit`, a worker still busy with one trial past it is killed
(mid-batch, mid-measurement: wherever it is) and the trial comes back failed, with that reason; a
new worker takes its slot. This is what makes trial_timeout a real limit, and why the serial
executor becomes a one-worker pool when there is one (execute/__init__.py).

Workers ignore SIGINT: Ctrl-C belongs to the driver, which then closes the pool; the trials left
'running' in the store are run again on resume.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import pickle
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

from ..evaluate.evaluator import Evaluator, Result
from ..space.base import Genome
from .base import Executor, ExecutorError, lost

if TYPE_CHECKING:
    from multiprocessing.context import ForkServerContext, SpawnContext

# Never plain fork: the driver has run torch by now, and a child forked with torch's thread pools
# alive can deadlock. A forkserver child is a fork of a process that only imported torch, so it
# starts in milliseconds, also when it replaces a worker that died; spawn is the portable fallback.
START_METHOD = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"

_Task = tuple[int, Genome, int, dict[str, Any]]


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, e.g. a container's cpuset), not the host's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def visible_gpus() -> list[str]:
    """CUDA device ids the workers may be pinned to (as CUDA_VISIBLE_DEVICES lists them: indices or
    GPU-... UUIDs); empty without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed:
        return [d.strip() for d in listed.split(",") if d.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


def assign_gpus(gpus: list[str], workers: int | None, cores: int) -> tuple[int, list[str]]:
    """(capacity, the GPU of each worker slot): one GPU per worker and never one GPU for two, so that a
    trial never lands on a GPU another trial holds. Without GPUs: `workers`, or one per core. With
    GPUs: one worker per GPU by default; more workers than GPUs is an ExecutorError."""
    if not gpus:
        return workers or cores, []
    if workers is not None and workers > len(gpus):
        raise ExecutorError(f"executor.workers: {workers} pool workers, but {len(gpus)} GPU(s) visible ({', '.join(gpus)}); "
                            "each worker trains on a GPU of its own, so use at most that many workers, training.device cpu "
                            "to train on the CPU, or the ray executor with a fractional gpus_per_trial to share GPUs")
    capacity = workers or len(gpus)
    return capacity, list(gpus[:capacity])


def death_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (the kernel's out-of-memory killer sends this)" if -exitcode == signal.SIGKILL else ""
        return f"worker process was killed by {name}{hint}"
    return f"worker process exited with code {exitcode} during the trial"


def _worker_main(conn: Connection, payload: bytes, threads: int, env: dict[str, str]) -> None:
    """A worker's whole life: set up once, then evaluate whatever the driver sends until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Before torch runs anything here: CUDA reads CUDA_VISIBLE_DEVICES when first used, and the
    # thread count is set explicitly since OpenMP may have read its variable at import already.
    os.environ.update(env)
    import torch

    torch.set_num_threads(threads)
    try:
        evaluator: Evaluator = pickle.loads(payload)
    except BaseException:
        conn.send_bytes(pickle.dumps(("init_error", traceback.format_exc())))
        return
    del payload
    conn.send_bytes(pickle.dumps(("ready", os.getpid())))
    while True:
        try:
            task = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return  # the driver is gone
        if task is None:
            break
        trial_id, genome, seed, options = task
        try:
            message: tuple[Any, ...] = ("result", trial_id, evaluator.evaluate(genome, seed, **options))
        except Exception:
            # The evaluator contract is to return failed Results, so this is a bug: surface it.
            message = ("error", trial_id, traceback.format_exc())
        # Plain pickle, not the connection's: torch would move tensors to shared memory and hand
        # over file descriptors, which ties the weights' lifetime to this process and /dev/shm.
        conn.send_bytes(pickle.dumps(message))
    # Skip interpreter teardown (about 1.5 s with torch loaded): nothing is left to clean up.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Start children with SIGINT ignored: the disposition survives fork and exec, so neither the
    forkserver nor a spawned worker sees the terminal's Ctrl-C, not even while importing torch."""
    previous = None
    with contextlib.suppress(ValueError):  # not the main thread: the worker ignores SIGINT itself
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _context() -> SpawnContext | ForkServerContext:
    if START_METHOD == "forkserver":
        context = mp.get_context("forkserver")
        # The server imports these once; '__main__' is multiprocessing's own default. Has no effect
        # once this process's forkserver runs, which is fine: it then has them already.
        context.set_forkserver_preload(["__main__", __name__])
        return context
    return mp.get_context("spawn")


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    ready: bool = False
    task: _Task | None = None
    started: float = 0.0  # time.monotonic() when the task was sent


class PoolExecutor(Executor):
    """`workers` persistent processes on this machine; trials go to whichever worker is free."""

    @classmethod
    def from_config(cls, evaluator: Evaluator, config: Any) -> PoolExecutor:
        return cls(evaluator, workers=config.workers, threads=config.threads,
                   time_limit=evaluator.stop_after() if evaluator is not None else None)

    def __init__(self, evaluator: Evaluator, workers: int | None = None, threads: int | None = None,
                 gpus: list[str] | None = None, time_limit: float | None = None):
        """`gpus`: the device ids to pin workers to (default: the visible ones, when the evaluator
        trains on a GPU, see Evaluator.wants_gpu); one worker per GPU. `time_limit`: seconds a worker
        may spend on one trial before it is killed."""
        cores = available_cores()
        if workers is not None and workers < 1:
            raise ExecutorError(f"executor.workers: need at least 1 worker, got {workers}")
        if gpus is None:
            gpus = visible_gpus() if evaluator is not None and evaluator.wants_gpu else []
        self.capacity, self.gpus = assign_gpus(list(gpus), workers, cores)
        self.threads = threads or max(1, cores // self.capacity)
        self.time_limit = time_limit  # seconds a worker may spend on one trial before it is killed
        try:
            self._payload = pickle.dumps(evaluator, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise ExecutorError(f"the pool executor sends the evaluator to its workers, but it cannot be pickled: {exc}") from exc
        self._context = _context()
        self._slots: list[_Worker | None] = [None] * self.capacity
        self._queue: deque[_Task] = deque()
        self._done: deque[tuple[int, Result]] = deque()

    # -- workers -------------------------------------------------------------------------------
    def _environment(self, slot: int) -> dict[str, str]:
        threads = str(self.threads)
        env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
        if self.gpus:
            # Slot k's worker, and whichever worker replaces it, has GPU k alone: inside, its torch sees
            # it as cuda:0. A slot runs one trial at a time, so no two trials share a GPU.
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[slot]
        return env

    def _spawn(self, slot: int) -> _Worker:
        ours, theirs = self._context.Pipe(duplex=True)
        process = self._context.Process(target=_worker_main, args=(theirs, self._payload, self.threads, self._environment(slot)),
                                        name=f"nasforge-worker-{slot}", daemon=True)
        with _sigint_ignored():
            process.start()
        theirs.close()
        worker = _Worker(process, ours)
        self._slots[slot] = worker
        return worker

    def _retire(self, slot: int) -> None:
        worker = self._slots[slot]
        self._slots[slot] = None
        if worker is not None:
            worker.conn.close()
            worker.process.join(timeout=5)

    def pids(self) -> dict[int, int]:
        """Trial id -> pid of the worker process running it, for the trials out now."""
        return {w.task[0]: w.process.pid for w in self._slots if w is not None and w.task is not None and w.process.pid}

    # -- the executor contract -----------------------------------------------------------------
    def submit(self, trial_id: int, genome: Genome, seed: int, **options: Any) -> None:
        """`options` go to the evaluator's evaluate() as they are (epochs, warm starts, ...)."""
        self._queue.append((trial_id, genome, seed, options))
        self._dispatch()

    def _free_slot(self) -> int | None:
        """A slot for the next task: an idle live worker if any, else one to (re)start."""
        idle = [s for s, w in enumerate(self._slots) if w is not None and w.task is None]
        for slot in idle:
            worker = self._slots[slot]
            if worker is not None and worker.process.is_alive():
                return slot
        empty = [s for s, w in enumerate(self._slots) if w is None]
        return (idle + empty)[0] if idle or empty else None

    def _dispatch(self) -> None:
        while self._queue and (slot := self._free_slot()) is not None:
            worker = self._slots[slot]
            if worker is None or not worker.process.is_alive():  # first use, or died while idle
                self._retire(slot)
                worker = self._spawn(slot)
            task = self._queue.popleft()
            worker.task = task
            worker.started = time.monotonic()
            # If it died just now, its sentinel fires and next_result reports the trial lost.
            with contextlib.suppress(OSError):
                worker.conn.send_bytes(pickle.dumps(task))

    def next_result(self) -> tuple[int, Result]:
        while not self._done:
            busy = [(slot, w) for slot, w in enumerate(self._slots) if w is not None and w.task is not None]
            if not busy:
                raise RuntimeError("next_result() called with no evaluation out")
            ready = set(wait([w.conn for _, w in busy] + [w.process.sentinel for _, w in busy], timeout=self._until_overdue(busy)))
            for slot, worker in busy:
                if worker.conn in ready or worker.process.sentinel in ready:
                    self._collect(slot, worker)
            self._stop_overdue()
            self._dispatch()
        return self._done.popleft()

    def _until_overdue(self, busy: list[tuple[int, _Worker]]) -> float | None:
        if self.time_limit is None:
            return None
        first = min(w.started for _, w in busy) + self.time_limit
        return max(0.0, first - time.monotonic())

    def _stop_overdue(self) -> None:
        """Kill every worker whose trial has run past the time limit; the trial comes back failed."""
        if self.time_limit is None:
            return
        now = time.monotonic()
        for slot, worker in enumerate(self._slots):
            if worker is None or worker.task is None or now - worker.started < self.time_limit:
                continue
            trial_id = worker.task[0]
            worker.process.kill()
            worker.process.join(timeout=5)
            self._retire(slot)
            self._done.append((trial_id, Result(
                "failed", train_seconds=now - worker.started,
                error=f"time limit exceeded: still running after {now - worker.started:.0f}s (the limit, with its grace, is "
                      f"{self.time_limit:.0f}s); stopped wherever it was (building, measuring costs or inside a batch)")))

    def _collect(self, slot: int, worker: _Worker) -> None:
        """Read what a worker said, or find out that it died; at most one message per call."""
        message = None
        try:
            if worker.conn.poll():
                message = pickle.loads(worker.conn.recv_bytes())
        except (EOFError, OSError, pickle.UnpicklingError):
            message = None  # the pipe closed: the process is gone (or going)
        if message is not None:
            kind = message[0]
            if kind == "ready":
                worker.ready = True
            elif kind == "init_error":
                self.close()
                raise ExecutorError(f"a pool worker could not load the evaluator:\n{message[1]}")
            elif kind == "error":
                self.close()
                raise RuntimeError(f"the evaluator raised in a pool worker on trial {message[1]}:\n{message[2]}")
            else:
                trial_id, result = message[1], message[2]
                worker.task = None
                self._done.append((trial_id, result))
            return
        worker.process.join(timeout=5)
        if worker.process.is_alive():
            return  # the pipe closed but the process lives on: its sentinel will tell
        task, ready, code = worker.task, worker.ready, worker.process.exitcode
        self._retire(slot)
        if not ready and (code is None or code >= 0):
            # Exiting by itself before its first word is not the trial's fault: it would again.
            self.close()
            raise ExecutorError(
                f"a pool worker failed to start ({death_reason(code)}); its error is printed above. "
                "A script that runs a search must guard it with `if __name__ == '__main__':`"
            )
        assert task is not None
        self._done.append((task[0], lost(death_reason(code))))

    def close(self) -> None:
        workers = [(slot, w) for slot, w in enumerate(self._slots) if w is not None]
        for _, worker in workers:
            if worker.task is None:
                with contextlib.suppress(OSError):
                    worker.conn.send_bytes(pickle.dumps(None))
            else:
                worker.process.terminate()  # mid-trial: the work is dropped, the store still says 'running'
        deadline = time.monotonic() + 10
        for _, worker in workers:
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=5)
            worker.conn.close()
        self._slots = [None] * self.capacity
        self._queue.clear()
        self._done.clear()
