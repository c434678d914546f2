"""What a hard trial timeout costs: candidates evaluated in this process (serial, no timeout) against
the same search with `trial_timeout` set, where the serial executor runs them in one worker process
that it can kill (execute/__init__.py). Small nets on digits, where the overhead weighs most.

CPU seconds of the whole process tree: the driver (time.process_time) plus the forkserver and the
workers it started and reaped (their utime + stime from /proc). Each run is a fresh Python process,
so the worker's start (a Python with torch and nasforge imported) is counted every time.

    python benchmarks/performance/isolation_overhead.py [--trials 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

MODES = {"in-process": None, "worker (trial_timeout)": 600.0}


def _tree_cpu_of(pid: int) -> float:
    """utime + stime + cutime + cstime of a process, in seconds (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(v) for v in fields[11:15]) / ticks


def one(mode: str, trials: int, out: str) -> dict:
    import nasforge

    start_cpu, start = time.process_time(), time.perf_counter()
    study = nasforge.search(dataset="digits", strategy="random", trials=trials, epochs=1, max_blocks=2, seed=0,
                            out=out, progress=False, trial_timeout=MODES[mode])
    wall = time.perf_counter() - start
    cpu = time.process_time() - start_cpu
    workers = 0.0
    from multiprocessing import forkserver

    server = getattr(forkserver._forkserver, "_forkserver_pid", None)
    if MODES[mode] is not None and server:
        time.sleep(0.5)  # the last worker exits after the driver's close; let the server reap it
        workers = _tree_cpu_of(server)
    train = sum(t.train_seconds or 0 for t in study.trials)
    return {"mode": mode, "wall": wall, "driver_cpu": cpu, "worker_cpu": workers, "train_seconds": train,
            "rewards": [t.reward for t in study.trials]}


def _median(runs: list[dict], key: str) -> float:
    return sorted(r[key] for r in runs)[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(one(args.one, args.trials, os.path.join(tmp, "run"))))
        return
    print(f"load before: {os.getloadavg()}")
    rows: dict[str, list[dict]] = {m: [] for m in MODES}
    for _ in range(args.repeats):
        for mode in MODES:  # alternate, so load changes hit both alike
            out = subprocess.run([sys.executable, __file__, "--one", mode, "--trials", str(args.trials)], check=True,
                                 capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout
            rows[mode].append(json.loads(out.strip().splitlines()[-1]))
    print(f"load after: {os.getloadavg()}")
    print(f"{args.trials} trials x 1 epoch, digits, max_blocks 2; {args.repeats} runs each (median)")
    print(f"{'mode':<24} {'CPU s (tree)':>12} {'driver':>8} {'worker':>8} {'wall s':>8} {'trained s':>10}")
    med = {}
    for mode, runs in rows.items():
        cpu = sorted(r["driver_cpu"] + r["worker_cpu"] for r in runs)[len(runs) // 2]
        med[mode] = cpu
        print(f"{mode:<24} {cpu:>12.2f} {_median(runs, 'driver_cpu'):>8.2f} {_median(runs, 'worker_cpu'):>8.2f} "
              f"{_median(runs, 'wall'):>8.2f} {_median(runs, 'train_seconds'):>10.2f}")
    same = all(r["rewards"] == rows["in-process"][0]["rewards"] for runs in rows.values() for r in runs)
    extra = med["worker (trial_timeout)"] - med["in-process"]
    print(f"overhead of the killable worker: {extra:+.2f} CPU-s per search ({extra / args.trials:+.3f} per trial); "
          f"same rewards in every run: {same}")


if __name__ == "__main__":
    main()
