"""Runs `nasforge` commands with faults injected, for tests/test_faults.py (not a test module itself).

One long-lived process imports nasforge once (no torch operation is run in it, so forking it is safe,
as for multiprocessing's forkserver) and forks a child per job, read as one JSON line from stdin:

    {"argv": [...], "cwd": DIR, "log": FILE, "kill_at": N | null, "kill_after": SECONDS | null,
     "fsize": BYTES | null, "count": FILE | null}

In the child, every write nasforge makes is an event: each SQL statement the store writes (BEGIN, the
rows, COMMIT), each weights / final-model file saved (torch.save), each rename into place, each
file an export writes. `kill_at` N: the process SIGKILLs itself at event N; a torch.save that is
event N first writes half of its bytes (a torn file). `kill_after`: SIGKILL after that many
seconds, wherever it is (mostly inside training). `fsize`: RLIMIT_FSIZE, so any file growing past
that many bytes fails to write, as on a full disk. `count`: the number of events is written there at
the end. The parent answers each job with one JSON line: {"code": exit code, "signal": signal number}.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import threading

import nasforge.cli  # noqa: F401 - imported once here, before any fork
import nasforge.export
import nasforge.rundir
import nasforge.store


class Faults:
    def __init__(self, kill_at: int | None):
        self.kill_at, self.events = kill_at, 0

    def event(self) -> bool:
        """Count one write; True when this is the one to die at."""
        self.events += 1
        return self.kill_at is not None and self.events == self.kill_at

    @staticmethod
    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)


def install(faults: Faults) -> None:
    original_write = nasforge.store.Store._write

    def _write(self, sql, args=()):
        if faults.event():
            faults.die()
        return original_write(self, sql, args)

    nasforge.store.Store._write = _write

    original_save = nasforge.rundir._torch_save

    def _torch_save(obj, path):
        if faults.event():
            original_save(obj, path)
            with open(path, "rb") as f:
                data = f.read()
            with open(path, "wb") as f:  # a torn write: half the bytes reached the disk
                f.write(data[: len(data) // 2])
            faults.die()
        original_save(obj, path)

    nasforge.rundir._torch_save = _torch_save

    original_replace = os.replace

    def replace(src, dst, *a, **k):
        if faults.event():
            faults.die()
        return original_replace(src, dst, *a, **k)

    os.replace = replace

    original_copy = nasforge.export.shutil.copyfile

    def copyfile(src, dst, *a, **k):
        if faults.event():
            faults.die()
        return original_copy(src, dst, *a, **k)

    nasforge.export.shutil.copyfile = copyfile


def child(job: dict) -> None:
    os.chdir(job["cwd"])
    log = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    faults = Faults(job.get("kill_at"))
    install(faults)
    if job.get("kill_after") is not None:
        timer = threading.Timer(job["kill_after"], faults.die)
        timer.daemon = True
        timer.start()
    if job.get("fsize") is not None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (job["fsize"], job["fsize"]))
    try:
        code = nasforge.cli.main(job["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    if job.get("count"):
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        with open(job["count"], "w") as f:
            f.write(str(faults.events))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    for line in sys.stdin:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            try:
                child(job)
            finally:
                os._exit(99)
        _, status = os.waitpid(pid, 0)
        answer = {"code": os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else None,
                  "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
