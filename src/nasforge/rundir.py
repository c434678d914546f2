"""The run directory: one folder per study, written by one process at a time.

    RUN/study.sqlite               the store (store.py)
    RUN/study.lock                 the writer's lock, naming who holds it
    RUN/weights/trial_NNNNN.pt     weights of the best trials (and of those the study still needs)
    RUN/final.pt                   the returned model

`RunDir` is the only code that knows these paths. A writing study checks and makes the folder
before any data is loaded (`prepare`), holds the lock for its whole life (`acquire` / `release`),
creates or opens the store through it, and keeps and prunes weights files through it.

The lock is `fcntl.flock` on RUN/study.lock, taken without waiting. Chosen over a lock file whose
existence is the lock (a pid file, filelock's SoftFileLock): the kernel releases a flock when its
process ends however it ends (SIGKILL, the OOM killer), so a dead writer leaves no lock to be judged
stale and no pid-reuse race can give one run to two writers. filelock's UnixFileLock is this same
flock, but it cannot say who holds the lock, which is what the second writer's message needs; so the
file also records the holder (pid, host, since when, command). A record left by a writer that ended
without releasing is reported as taken over. The file is never deleted: deleting a flocked file lets
a newcomer lock a fresh inode while the old holder still holds the deleted one.

Every file is written under a temporary name and renamed into place, so a crash or a full disk
never leaves half a weights file under its real name; write failures become RunDirError with the
reason in the user's terms (a full disk, a file-size limit, no permission).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import RunDirError, RunLocked, WriteFailed
from .store import STORE_FILE, Store, fsync_path, write_problem

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; see RunDir.acquire
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = "study.lock"
WEIGHTS_DIR = "weights"
FINAL_FILE = "final.pt"
# scheme:/ or scheme:// (a Path collapses the double slash); two letters at least, so C:/ stays a path.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")
# errnos that mean "the disk (or a limit on it) takes no more data".
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
# What torch.save raises when a write fails part-way (it keeps no errno).
_TORCH_WRITE_FAILURES = ("unexpected pos", "file write failed", "PytorchStreamWriter failed")


def check_folder(path: str | Path, what: str = "out") -> Path:
    """`path` as a folder nasforge may create and write: not a URL, not a file, not under a file, in a
    writable place. Makes nothing; RunDirError naming `what` (the option) otherwise."""
    text = str(path)
    _not_a_url(text, what)
    folder = Path(text).expanduser()
    if folder.exists() and not folder.is_dir():
        raise RunDirError(f"{what}: {folder} is a file, not a folder; choose a folder path")
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise RunDirError(f"{what}: {folder} lies under {existing}, which is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunDirError(f"{what}: cannot create or write {folder}: no permission to write in {existing}")
    return folder


def _not_a_url(text: str, what: str) -> None:
    if _URL.match(text):
        raise RunDirError(f"{what}: {text!r} looks like a URL; nasforge writes to a folder on this machine "
                          f"(its study is RUN/{STORE_FILE}): give a folder path such as runs/mine")


def make_folder(path: Path, what: str = "out") -> Path:
    check_folder(path, what)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"{what}: cannot create {path}: {describe_os_error(exc)}") from exc
    return path


def describe_os_error(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno in DISK_FULL:
        return f"the disk is full or refuses more data ({exc.strerror})"
    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"not allowed to write there ({exc.strerror})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, RuntimeError) and any(s in str(exc) for s in _TORCH_WRITE_FAILURES):
        return "the write failed part-way: the disk is full or refuses more data (a quota or a file-size limit)"
    return write_problem(exc)


def is_write_failure(exc: BaseException) -> bool:
    """An exception raised by a failing write (not by a bug): OSError, or torch.save's RuntimeError."""
    return isinstance(exc, OSError) or (isinstance(exc, RuntimeError) and any(s in str(exc) for s in _TORCH_WRITE_FAILURES))


def write_atomically(path: Path, write: Callable[[Path], None]) -> Path:
    """Run `write(tmp)` and rename tmp onto `path` (after flushing it to the disk). On any failure the
    temporary file is removed, `path` is left as it was, and a write failure becomes a RunDirError."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if is_write_failure(exc):
            raise WriteFailed(f"cannot write {path}: {describe_os_error(exc)}") from exc
        raise
    return path


@dataclass(frozen=True)
class Holder:
    """Who holds (or last held) a run's lock."""

    pid: int
    host: str
    since: float
    command: str = ""

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return f"pid {self.pid} on {self.host} since {when}" + (f" ({self.command})" if self.command else "")

    def alive(self) -> bool | None:
        """Whether the process still runs; None when it is on another host (it cannot be known from here)."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # exists, owned by someone else
        return True

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        try:
            data = json.loads(text)
            return cls(int(data["pid"]), str(data["host"]), float(data["since"]), str(data.get("command", "")))
        except (ValueError, KeyError, TypeError):
            return None


class RunDir:
    """One run directory: its paths, its lock, its store and its weights files."""

    def __init__(self, path: str | Path):
        _not_a_url(str(path), "out")  # before Path() turns sqlite:///x into sqlite:/x
        self.path = Path(path)
        self._lock_fd: int | None = None
        # The record a writer that ended without releasing the lock left behind (set by acquire).
        self.taken_over: Holder | None = None

    # -- paths ---------------------------------------------------------------------------------
    @property
    def store_path(self) -> Path:
        return self.path / STORE_FILE

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_FILE

    @property
    def weights_dir(self) -> Path:
        return self.path / WEIGHTS_DIR

    @property
    def final_path(self) -> Path:
        return self.path / FINAL_FILE

    def weights_path(self, trial_id: int) -> Path:
        return self.weights_dir / f"trial_{trial_id:05d}.pt"

    def retrained_path(self, trial_id: int) -> Path:
        """A trial retrained from scratch while the study picks its result (final_candidates)."""
        return self.weights_dir / f"retrained_{trial_id:05d}.pt"

    def has_store(self) -> bool:
        return self.store_path.exists()

    # -- the folder and its lock ---------------------------------------------------------------
    def prepare(self) -> RunDir:
        """Check and make the folder (before any data is loaded, so a bad --out fails at once)."""
        make_folder(self.path, "out")
        return self

    @property
    def locked(self) -> bool:
        return self._lock_fd is not None

    def acquire(self) -> RunDir:
        """Take the run's lock, or raise RunLocked naming the process that holds it. Re-entrant."""
        if self._lock_fd is not None:
            return self
        self.prepare()
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            raise RunDirError(f"out: cannot create the lock {self.lock_path}: {describe_os_error(exc)}") from exc
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder_record(fd)
            os.close(fd)
            who = holder.describe() if holder else "another process (it left no record of itself)"
            raise RunLocked(f"{self.path} is being written by another search: {who}. One run has one writer; wait for "
                            f"it to end (or stop it), then continue with: nasforge search --resume --out {self.path}. "
                            "show, report and export can read the run meanwhile") from None
        except OSError as exc:
            os.close(fd)
            raise RunDirError(f"out: cannot lock {self.lock_path} ({exc.strerror}): the file system does not support "
                              "locks; put the run directory on a local disk") from exc
        previous = Holder.parse(_read(fd))
        self.taken_over = previous if previous is not None and previous.pid != os.getpid() else None
        program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
        program = "nasforge" if program in ("cli.py", "nasforge", "__main__.py") else program
        me = Holder(os.getpid(), socket.gethostname(), time.time(), " ".join([program, *sys.argv[1:]])[:200])
        record = json.dumps(me.__dict__).encode()
        try:  # written over the old record, then cut to length: a reader never sees an empty file in between
            os.pwrite(fd, record, 0)
            os.ftruncate(fd, len(record))
        except OSError as exc:
            os.close(fd)
            raise RunDirError(f"out: cannot write the lock {self.lock_path}: {describe_os_error(exc)}") from exc
        self._lock_fd = fd
        self._clean_temporaries()
        return self

    def release(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # released cleanly: no record, so nobody reports a takeover
        os.close(fd)  # closing the descriptor releases the flock

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.release()

    def _clean_temporaries(self) -> None:
        """Half-written files a crash left under temporary names (only the lock holder may do this)."""
        for folder in (self.path, self.weights_dir):
            if folder.is_dir():
                for tmp in folder.glob(".*.tmp"):
                    tmp.unlink(missing_ok=True)

    # -- the store -----------------------------------------------------------------------------
    def create_store(self, meta: dict[str, Any]) -> Store:
        return Store.create(self.store_path, meta)

    def open_store(self) -> Store:
        return Store(self.store_path, readonly=False)

    # -- weights -------------------------------------------------------------------------------
    def save_weights(self, trial_id: int, state_dict: dict[str, Any]) -> Path:
        try:
            self.weights_dir.mkdir(exist_ok=True)
        except OSError as exc:
            raise WriteFailed(f"cannot create {self.weights_dir}: {describe_os_error(exc)}") from exc
        return write_atomically(self.weights_path(trial_id), lambda tmp: _torch_save(state_dict, tmp))

    def save_retrained(self, trial_id: int, state_dict: dict[str, Any]) -> Path:
        try:
            self.weights_dir.mkdir(exist_ok=True)
        except OSError as exc:
            raise WriteFailed(f"cannot create {self.weights_dir}: {describe_os_error(exc)}") from exc
        return write_atomically(self.retrained_path(trial_id), lambda tmp: _torch_save(state_dict, tmp))

    def keep_weights(self, trial_id: int, state_dict: dict[str, Any], reward: float | None, others: Iterable[float],
                     keep_top: int, always: bool = False) -> bool:
        """Save a trial's weights when it ranks among the best `keep_top` of the complete trials
        (`others`: their rewards, this one excluded), or `always` (the study still needs them)."""
        ranked = sorted(others, reverse=True)
        top = reward is not None and (len(ranked) < keep_top or reward > ranked[keep_top - 1])
        if not (top or always):
            return False
        self.save_weights(trial_id, state_dict)
        return True

    def prune_weights(self, keep: Iterable[int]) -> None:
        """Delete every kept weights file but those of the trials in `keep`."""
        names = {self.weights_path(i).name for i in keep}
        if self.weights_dir.is_dir():
            for path in self.weights_dir.glob("trial_*.pt"):
                if path.name not in names:
                    path.unlink(missing_ok=True)

    def load_weights(self, path: Path) -> dict[str, Any]:
        """A kept weights file of this run; a damaged one is a RunDirError saying how to go on."""
        try:
            return load_weights(path)
        except FileNotFoundError:
            raise
        except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError... for a damaged file
            raise RunDirError(f"{path} is damaged and cannot be read ({type(exc).__name__}: {str(exc)[:200]}); delete it "
                              f"and continue with: nasforge search --resume --out {self.path}") from exc

    def save_final(self, state_dict: dict[str, Any]) -> Path:
        return write_atomically(self.final_path, lambda tmp: _torch_save(state_dict, tmp))

    def write_failure(self, exc: Exception, store: Store) -> str:
        """What to tell the user when a write of a running study fails (a full disk): what is safe
        in its `store`, the room left here, and how to go on."""
        try:
            safe = sum(t.status != "running" for t in store.trials())
        except Exception:  # the store itself may be what failed; its count is then unknown
            return f"{exc}. Continue with: nasforge search --resume --out {self.path}"
        free = self.free_bytes()
        room = f" ({free / 1e6:.0f} MB free there now)" if free is not None else ""
        return (f"{exc}. {safe} finished trial(s) are safe in {store.path}{room}; make room and continue with: "
                f"nasforge search --resume --out {self.path}")

    def free_bytes(self) -> int | None:
        try:
            return shutil.disk_usage(self.path).free
        except OSError:
            return None


def load_weights(path: str | Path) -> dict[str, Any]:
    """A state dict saved by nasforge (a trial's weights, final.pt, an export's weights.pt), read
    without unpickling arbitrary objects."""
    import torch

    return torch.load(Path(path), map_location="cpu", weights_only=True)


def _torch_save(obj: Any, path: Path) -> None:
    import torch

    torch.save(obj, path)


def _holder_record(fd: int, wait: float = 2.0) -> Holder | None:
    """The record of the process that holds the lock on `fd`.

    The holder writes its record just after it takes the lock, so a newcomer that finds the lock taken
    can read the file in that instant, still empty: it waits briefly for the record before saying the
    holder left none.
    """
    deadline = time.monotonic() + wait
    while True:
        holder = Holder.parse(_read(fd))
        if holder is not None or time.monotonic() >= deadline:
            return holder
        time.sleep(0.05)


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 4096, 0).decode("utf-8", "replace")
    except OSError:
        return ""
