"""Trials as Ray tasks: on a running cluster (`address`), or on a local Ray that nasforge starts
and stops itself.

Ray is an optional extra (`pip install 'nasforge[ray]'`) and is imported only when this executor is
chosen. The driver stays the store's only writer; tasks only evaluate and return a Result. The
evaluator (with its dataset) goes into the object store once and each Ray worker process
deserialises it once, on its first trial. Ray's own task retries are off: a task whose worker or
node died comes back as LOST, so the study counts attempts in the store like any other executor.

A local Ray is kept off the user's global state: its temp dir is a private folder (not /tmp/ray),
and its token authentication uses a per-process token in the environment of the processes it
starts, instead of generating ~/.ray/auth_token.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import secrets
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from ..evaluate.evaluator import Evaluator, Result
from ..space.base import Genome
from .base import Executor, ExecutorError, lost

INSTALL_HINT = "pip install 'nasforge[ray]'  (or: pip install 'ray>=2.9')"

# One token for this process's local clusters: Ray caches it on first use, so a second local
# cluster started by the same process must present the same one.
_TOKEN = secrets.token_hex(32)

# In each Ray worker process: the evaluator of the study it serves, by object id.
_EVALUATORS: dict[str, Evaluator] = {}


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ExecutorError(f"the ray executor needs Ray, which is not installed: {INSTALL_HINT}") from exc
    return ray


class _StartClock:
    """A Ray actor that tasks tell when they start, so that a time limit counts from a trial's start
    rather than from its submission (a fresh Ray worker can take many seconds to start on a busy
    machine). The driver notes the time it first sees a start (its own clock: nodes' clocks differ)."""

    def __init__(self) -> None:
        self.started: set[int] = set()

    def start(self, trial_id: int) -> None:
        self.started.add(trial_id)

    def which(self, trial_ids: list[int]) -> list[int]:
        return [t for t in trial_ids if t in self.started]


def _evaluate(holder: list[Any], genome: Genome, seed: int, threads: int, options: dict[str, Any],
              clock: Any = None, trial_id: int = 0) -> Result:
    """The Ray task. The evaluator's ref comes wrapped in a list so that Ray does not fetch and
    deserialise it for every task; this process does that once and keeps it."""
    import ray
    import torch

    torch.set_num_threads(threads)
    key = holder[0].hex()
    evaluator = _EVALUATORS.get(key)
    if evaluator is None:
        _EVALUATORS.clear()  # a worker serves one study at a time: drop the previous dataset
        evaluator = _EVALUATORS[key] = ray.get(holder[0])
    # The trial starts now: a fresh worker's imports and its first copy of the evaluator (the
    # dataset with it) took tens of seconds on a loaded 2-core machine and are not the trial's time.
    if clock is not None:
        clock.start.remote(trial_id)
    return evaluator.evaluate(genome, seed, **options)


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail fast on a HOST:PORT that nothing answers: ray.init would retry it without end."""
    host, sep, port = address.rpartition(":")
    if address.startswith("ray://") or not sep or not port.isdigit():
        return  # 'auto', a Ray client address, ...: Ray's own checks apply
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ExecutorError(f"executor.address: nothing answers at {address} ({exc}); is the Ray head running there?") from exc


def ray_slots(resources: dict[str, float], cpus_per_trial: float, gpus_per_trial: float, workers: int | None = None) -> int:
    """Trials at once on a cluster with `resources`: `workers` when given, else as many as its CPUs
    and (with a GPU share) its GPUs hold; Ray's scheduler then never grants more of a GPU than there is,
    so with gpus_per_trial 1 no two trials share one and with 0.5 two do."""
    if workers:
        return workers
    slots = resources.get("CPU", 1) / cpus_per_trial
    if gpus_per_trial:
        slots = min(slots, resources.get("GPU", 0) / gpus_per_trial)
    return max(1, math.floor(slots + 1e-9))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else ""


class RayExecutor(Executor):
    """Each trial is a Ray task asking for `cpus_per_trial` CPUs and `gpus_per_trial` GPUs
    (fractions allowed: 0.5 GPU puts two trials on one device). With a GPU share Ray sets
    CUDA_VISIBLE_DEVICES for the task, pinning it to its device."""

    @classmethod
    def from_config(cls, evaluator: Evaluator, config: Any) -> RayExecutor:
        return cls(evaluator, address=config.address, workers=config.workers, cpus_per_trial=config.cpus_per_trial,
                   gpus_per_trial=config.gpus_per_trial, temp_dir=config.ray_temp_dir,
                   time_limit=evaluator.stop_after() if evaluator is not None else None)

    def __init__(self, evaluator: Evaluator, address: str | None = None, workers: int | None = None,
                 cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0, temp_dir: str | Path | None = None,
                 num_cpus: int | None = None, num_gpus: int | None = None, time_limit: float | None = None):
        """`num_cpus` / `num_gpus`: the resources of a local Ray that this executor starts (default:
        what Ray detects); Ray schedules by these counts and sets each task's CUDA_VISIBLE_DEVICES
        to the GPUs it was granted. `time_limit`: seconds a trial may run before its task is cancelled
        with its worker (Evaluator.stop_after), counted from the moment the task starts (_StartClock)."""
        self.ray = import_ray()
        self.evaluator = evaluator
        self.address, self.workers = address, workers
        self.cpus_per_trial, self.gpus_per_trial = cpus_per_trial, gpus_per_trial
        self.temp_dir = Path(temp_dir).resolve() if temp_dir else None
        self.num_cpus, self.num_gpus = num_cpus, num_gpus
        self._capacity: int | None = None
        self._started = False
        self._owns_ray = False  # we called ray.init, so we call ray.shutdown
        self._made_temp: str | None = None
        self._saved_env: dict[str, str | None] = {}
        self._ref: Any = None
        self._task: Any = None
        self._out: dict[Any, int] = {}  # object ref of a running task -> trial id
        self.time_limit = time_limit
        self._clock: Any = None  # the _StartClock actor, with a time limit
        self._running_since: dict[Any, float] = {}  # object ref -> when its start was first seen (monotonic)

    # -- cluster -------------------------------------------------------------------------------
    @property
    def capacity(self) -> int:  # type: ignore[override]  # known only once Ray is up
        if self._capacity is None:
            self._start()
        assert self._capacity is not None
        return self._capacity

    def _start(self) -> None:
        if self._started:
            return
        ray = self.ray
        # A job submitted to a cluster finds it in RAY_ADDRESS, as Ray's own programs do.
        address = self.address or os.environ.get("RAY_ADDRESS")
        if ray.is_initialized():
            pass  # the caller's Ray session: use it, leave it running
        elif address:
            _check_reachable(address)
            try:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise ExecutorError(f"executor.address: cannot connect to the Ray cluster at {address!r}: {exc}") from exc
            self._owns_ray = True
        else:
            self._start_local()
        self._started = True
        resources = ray.cluster_resources()
        self._capacity = ray_slots(resources, self.cpus_per_trial, self.gpus_per_trial, self.workers)
        if self.gpus_per_trial and not resources.get("GPU"):
            self.close()
            raise ExecutorError(f"executor.gpus_per_trial: {self.gpus_per_trial:g} GPUs asked per trial, but the Ray cluster has no GPU")
        if resources.get("GPU") and not self.gpus_per_trial and self.evaluator.wants_gpu:
            logging.getLogger("nasforge").info(
                "the Ray cluster has %g GPU(s), but executor.gpus_per_trial is 0: Ray hides GPUs from tasks that ask for none, "
                "so trials train on the CPU", resources["GPU"])
        self._ref = ray.put(self.evaluator)
        options: dict[str, Any] = dict(num_cpus=self.cpus_per_trial, num_gpus=self.gpus_per_trial, max_retries=0,
                                       retry_exceptions=False)
        if self.gpus_per_trial:
            # torch reads CUDA_VISIBLE_DEVICES once per process: a Ray worker reused for a task granted
            # another GPU would go on using its first one, which another trial may hold. So every GPU
            # trial gets a fresh worker process (Ray's own default for GPU tasks declared in
            # @ray.remote; .options() would not carry it).
            options["max_calls"] = 1
        self._task = ray.remote(**options)(_evaluate)

    def _start_local(self) -> None:
        # Only the token: with RAY_AUTH_MODE unset, ray.init turns token mode on for a new local
        # cluster itself (and refreshes its cached config, which a mode set by us after `import ray`
        # would miss), and finds the token here instead of writing one to ~/.ray.
        auth = {"RAY_AUTH_TOKEN": _TOKEN}
        if any(k in os.environ for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")):
            auth = {}  # the user configured Ray's authentication: respect it
        self._saved_env = {k: os.environ.get(k) for k in (*auth, "RAY_AUTH_MODE")}
        os.environ.update(auth)
        # Ray puts unix sockets under its temp dir, and their paths may not exceed 107 bytes: a
        # short private folder of ours, or a short link to the folder the user chose.
        self._made_temp = tempfile.mkdtemp(prefix="nasforge-ray-")
        temp = self._made_temp
        if self.temp_dir is not None:
            self.temp_dir.mkdir(parents=True, exist_ok=True)
            temp = os.path.join(self._made_temp, "t")
            os.symlink(self.temp_dir, temp)
        # Ray announces the token mode it turned on; it is ours to manage, so say nothing.
        announcer = logging.getLogger("ray._private.authentication.authentication_token_setup")
        level = announcer.level
        announcer.setLevel(logging.ERROR)
        try:
            self.ray.init(address="local", num_cpus=self.num_cpus, num_gpus=self.num_gpus, include_dashboard=False, _temp_dir=temp,
                          log_to_driver=False, configure_logging=False)
        except Exception as exc:
            self._cleanup_local()
            raise ExecutorError(f"could not start a local Ray: {exc}") from exc
        finally:
            announcer.setLevel(level)
        self._owns_ray = True

    def _cleanup_local(self) -> None:
        for k, v in self._saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self._saved_env = {}
        if self._made_temp:
            # rmtree does not follow the link: a folder the user chose keeps Ray's logs.
            shutil.rmtree(self._made_temp, ignore_errors=True)
            self._made_temp = None

    # -- the executor contract -----------------------------------------------------------------
    def submit(self, trial_id: int, genome: Genome, seed: int, **options: Any) -> None:
        """`options` go to the evaluator's evaluate() as they are (epochs, warm starts, ...)."""
        self._start()
        threads = max(1, int(self.cpus_per_trial))
        if self.time_limit is not None and self._clock is None:
            self._clock = self.ray.remote(num_cpus=0)(_StartClock).remote()
        ref = self._task.remote([self._ref], genome, seed, threads, options, self._clock, trial_id)
        self._out[ref] = trial_id

    def next_result(self) -> tuple[int, Result]:
        if not self._out:
            raise RuntimeError("next_result() called with no evaluation out")
        ray = self.ray
        ready: list[Any] = []
        while not ready:
            ready, _ = ray.wait(list(self._out), num_returns=1, timeout=self._until_overdue())
            overdue = None if ready else self._stop_overdue()
            if overdue is not None:
                return overdue
        ref = ready[0]
        trial_id = self._out.pop(ref)
        self._running_since.pop(ref, None)
        try:
            return trial_id, ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            if isinstance(getattr(exc, "cause", None), ray.exceptions.RayError):
                return trial_id, lost(f"Ray task lost ({type(exc.cause).__name__}): {_first_line(exc.cause)}")
            # The evaluator itself raised: a bug, as in the serial executor, not a lost worker.
            self.close()
            raise RuntimeError(f"the evaluator raised in a Ray task on trial {trial_id}:\n{exc}") from None
        except ray.exceptions.RayError as exc:
            # Worker crashed, node died, Ray's memory monitor killed it, object lost, ...
            return trial_id, lost(f"Ray task lost ({type(exc).__name__}): {_first_line(exc)}")

    def _until_overdue(self) -> float | None:
        """How long ray.wait may wait: until the first running task reaches the limit, or a second
        while a task's start has not been seen yet."""
        if self.time_limit is None:
            return None
        self._note_starts()
        now = time.monotonic()
        waits = [since + self.time_limit - now for since in self._running_since.values()]
        if len(self._running_since) < len(self._out):
            waits.append(1.0)
        return max(0.0, min(waits))

    def _note_starts(self) -> None:
        waiting = {self._out[ref]: ref for ref in self._out if ref not in self._running_since}
        if not waiting:
            return
        now = time.monotonic()
        for trial_id in self.ray.get(self._clock.which.remote(list(waiting))):
            self._running_since[waiting[trial_id]] = now

    def _stop_overdue(self) -> tuple[int, Result] | None:
        """Cancel the longest-running task if it ran past the time limit (force: its worker process is
        killed wherever it is, and Ray starts another); the trial comes back failed with the reason."""
        assert self.time_limit is not None
        # The starts were noted just before the wait that timed out (_until_overdue); a start seen
        # only now could not be past the limit yet.
        if not self._running_since:
            return None
        ref = min(self._running_since, key=self._running_since.__getitem__)
        ran = time.monotonic() - self._running_since[ref]
        if ran < self.time_limit:
            return None
        with contextlib.suppress(Exception):
            self.ray.cancel(ref, force=True)
        trial_id = self._out.pop(ref)
        self._running_since.pop(ref)
        return trial_id, Result("failed", train_seconds=ran, error=(
            f"time limit exceeded: still running after {ran:.0f}s (the limit, with its grace, is {self.time_limit:.0f}s); "
            "its Ray task was cancelled wherever it was (building, measuring costs or inside a batch)"))

    def close(self) -> None:
        if not self._started:
            return
        ray = self.ray
        for ref in self._out:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)  # kills the worker mid-trial; the store still says 'running'
        self._out.clear()
        self._running_since.clear()
        self._clock = None
        if self._owns_ray:
            ray.shutdown()
            self._cleanup_local()
        self._owns_ray = False
        self._started = False
        self._ref = self._task = None  # capacity stays known: reading it must not start Ray again
