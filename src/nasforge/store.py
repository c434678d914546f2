"""The study's record: one SQLite file, one writer (the driver process).

Every ask is written as a 'running' trial together with the strategy state after that ask, and every
result together with the strategy state after that tell, each in one transaction. So whatever the
moment of a crash, the stored state and the stored trials agree: on resume, 'running' trials are
evaluated again and told to the restored strategy, and no completed trial is lost or duplicated.

A store comes into being whole: `Store.create` writes the schema and the study's metadata (config,
dataset, space) in one transaction into a temporary file and renames it into place, so a crash
while creating leaves either no store or a complete one. Every open checks it (`PRAGMA quick_check`,
its tables, its metadata) and refuses an empty, incomplete or damaged one with what is wrong, what
is still readable and how to recover. Readers open it with SQLite's `mode=ro` and never write it;
the one writer is whoever holds the run's lock (rundir.py).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import StoreDamaged, StoreError, WriteFailed

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE trials (
    id INTEGER PRIMARY KEY,
    genome TEXT NOT NULL,
    genome_key TEXT NOT NULL,
    parents TEXT NOT NULL,
    operator TEXT NOT NULL,
    status TEXT NOT NULL,
    reward REAL,
    metrics TEXT,
    params INTEGER,
    train_seconds REAL,
    curve TEXT,
    seed INTEGER NOT NULL,
    error TEXT,
    started_at REAL NOT NULL,
    finished_at REAL,
    attempts INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX trials_key ON trials (genome_key);
CREATE TABLE strategy_state (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL);
"""

STORE_FILE = "study.sqlite"
TABLES = ("meta", "trials", "strategy_state")
# What a study writes when its store is created; a store without any of them cannot be resumed,
# reported or exported (and --resume never makes up a config in its place).
REQUIRED_META = ("config", "dataset", "space")


@dataclass
class TrialRecord:
    id: int
    genome: Any
    genome_key: str
    parents: list[int]
    operator: str
    status: str
    seed: int
    reward: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    params: int | None = None
    train_seconds: float | None = None
    curve: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None
    started_at: float = 0.0
    finished_at: float | None = None
    attempts: int = 1

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Store:
    """One study's store. `Store(path)` opens an existing store read-only (what `show`, `report` and
    `export` use); `readonly=False` opens it for the run's one writer; `Store.create` makes a new one."""

    def __init__(self, path: str | Path, readonly: bool = True):
        self.path = Path(path)
        self.readonly = readonly
        self.db = open_checked(self.path, readonly)

    @classmethod
    def create(cls, path: str | Path, meta: dict[str, Any]) -> Store:
        """A new store holding `meta` (at least REQUIRED_META), opened for writing. Written whole into
        a temporary file and renamed into place: a crash meanwhile leaves no store, never half of one."""
        path = Path(path)
        missing = [k for k in REQUIRED_META if k not in meta]
        if missing:
            raise ValueError(f"a new store needs {', '.join(missing)}")
        if path.exists():
            raise StoreError(f"{path} exists already")
        tmp = path.with_name(f".{path.name}.creating")
        _remove_database(tmp)
        try:
            db = sqlite3.connect(tmp, isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode=WAL")  # persistent in the file; outside any transaction
                db.execute("BEGIN IMMEDIATE")
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()])
                db.execute("COMMIT")
            finally:
                db.close()  # checkpoints the WAL into the file and removes it
            fsync_path(tmp)
            os.replace(tmp, path)
            fsync_path(path.parent)
        except (OSError, sqlite3.Error) as exc:
            _remove_database(tmp)
            raise WriteFailed(f"cannot create the study store {path}: {write_problem(exc)}; nothing was written") from exc
        return cls(path, readonly=False)

    @classmethod
    def in_dir(cls, run_dir: str | Path, readonly: bool = True) -> Store:
        run_dir = Path(run_dir)
        if not (run_dir / STORE_FILE).exists():
            raise StoreError(f"{run_dir} holds no study (expected {run_dir / STORE_FILE})")
        return cls(run_dir / STORE_FILE, readonly=readonly)

    def close(self) -> None:
        self.db.close()

    def checkpoint(self) -> None:
        """Move everything the write-ahead log holds into the store file itself (at the end of a run), so
        the file alone is the whole study and closing the connection later changes nothing."""
        with contextlib.suppress(sqlite3.Error):  # another reader may hold the log; the data is safe either way
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _write(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        try:
            return self.db.execute(sql, args)
        except sqlite3.OperationalError as exc:
            raise StoreWriteError(f"cannot write the study store {self.path}: {write_problem(exc)}") from exc

    # -- metadata ----------------------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set(self, key: str, value: Any) -> None:
        self._write("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    # -- trials ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back whole on any error (a full disk included)."""
        self._write("BEGIN IMMEDIATE")
        try:
            yield
            self._write("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute("ROLLBACK")
            raise

    def _save_state(self, state: dict[str, Any] | None) -> None:
        if state is not None:
            self._write("INSERT OR REPLACE INTO strategy_state (id, state) VALUES (1, ?)", (json.dumps(state),))

    def add_trial(self, genome: Any, genome_key: str, parents: list[int], operator: str, seed: int, state: dict[str, Any] | None) -> int:
        with self._transaction():
            cur = self._write(
                "INSERT INTO trials (genome, genome_key, parents, operator, status, seed, started_at) VALUES (?, ?, ?, ?, 'running', ?, ?)",
                (json.dumps(genome), genome_key, json.dumps(parents), operator, seed, time.time()),
            )
            self._save_state(state)
            trial_id = cur.lastrowid
            assert trial_id is not None  # sqlite3 sets it after every INSERT
            return trial_id

    def restart_trial(self, trial_id: int) -> None:
        self._write("UPDATE trials SET attempts = attempts + 1, started_at = ? WHERE id = ?", (time.time(), trial_id))

    def finish_trial(self, trial_id: int, status: str, reward: float | None, metrics: dict[str, Any], params: int | None,
                     train_seconds: float | None, curve: list[dict[str, float]], error: str | None,
                     state: dict[str, Any] | None, elapsed: float | None = None) -> None:
        with self._transaction():
            self._write(
                "UPDATE trials SET status = ?, reward = ?, metrics = ?, params = ?, train_seconds = ?, curve = ?, error = ?,"
                " finished_at = ? WHERE id = ?",
                (status, reward, json.dumps(metrics), params, train_seconds, json.dumps(curve), error, time.time(), trial_id),
            )
            self._save_state(state)
            if elapsed is not None:
                self.set("elapsed_seconds", elapsed)

    def save_state(self, state: dict[str, Any], elapsed: float | None = None) -> None:
        with self._transaction():
            self._save_state(state)
            if elapsed is not None:
                self.set("elapsed_seconds", elapsed)

    def strategy_state(self) -> dict[str, Any] | None:
        row = self.db.execute("SELECT state FROM strategy_state WHERE id = 1").fetchone()
        return json.loads(row[0]) if row else None

    def _record(self, row: sqlite3.Row | tuple) -> TrialRecord:
        (id_, genome, key, parents, operator, status, reward, metrics, params, secs, curve, seed, error, started, finished, attempts) = row
        return TrialRecord(
            id=id_, genome=json.loads(genome), genome_key=key, parents=json.loads(parents), operator=operator,
            status=status, seed=seed, reward=reward, metrics=json.loads(metrics) if metrics else {}, params=params,
            train_seconds=secs, curve=json.loads(curve) if curve else [], error=error, started_at=started,
            finished_at=finished, attempts=attempts,
        )

    def trials(self, status: str | None = None) -> list[TrialRecord]:
        sql = "SELECT * FROM trials" + (" WHERE status = ?" if status else "") + " ORDER BY id"
        return [self._record(r) for r in self.db.execute(sql, (status,) if status else ())]

    def top(self, k: int, exclude: int | None = None) -> list[TrialRecord]:
        """The k complete trials of highest reward (the earlier on a tie), without reading the others:
        a one-shot search stores thousands of trials and asks for its best after each."""
        rows = self.db.execute("SELECT * FROM trials WHERE status = 'complete' AND id IS NOT ? ORDER BY reward DESC, id LIMIT ?",
                               (exclude, k))
        return [self._record(r) for r in rows]

    def trial(self, trial_id: int) -> TrialRecord | None:
        row = self.db.execute("SELECT * FROM trials WHERE id = ?", (trial_id,)).fetchone()
        return self._record(row) if row else None

    def require_trial(self, trial_id: int) -> TrialRecord:
        """A trial the caller knows is in the store (one it added, or a stored result names); a
        StoreError names a store that has lost it."""
        record = self.trial(trial_id)
        if record is None:
            raise StoreError(f"{self.path}: trial {trial_id} is missing from the store (damaged or edited?)")
        return record

    def finished_by_key(self, genome_key: str) -> TrialRecord | None:
        row = self.db.execute(
            "SELECT * FROM trials WHERE genome_key = ? AND status != 'running' ORDER BY id LIMIT 1", (genome_key,)
        ).fetchone()
        return self._record(row) if row else None

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM trials").fetchone()[0])


class StoreWriteError(WriteFailed):
    """Writing the store failed (a full disk, a file-size limit, a read-only file system). The
    transaction was rolled back: the store holds what it held before."""


def write_problem(exc: BaseException) -> str:
    """What a failed write of the store says, in the user's terms."""
    text = str(exc)
    errno_ = getattr(exc, "errno", None)
    if errno_ in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) or "full" in text or "disk I/O" in text:
        return f"the disk is full or refuses more data ({text})"
    if errno_ in (errno.EACCES, errno.EPERM, errno.EROFS) or "readonly" in text or "read-only" in text:
        return f"not allowed to write there ({text})"
    return text


def fsync_path(path: Path) -> None:
    """Flush a file (or a folder's entry list) to the disk, where the platform allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_database(path: Path) -> None:
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"), path.with_name(path.name + "-journal")):
        p.unlink(missing_ok=True)


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    # mode=ro: never writes the database (nor creates a missing one); mode=rw: never creates one either.
    mode = "ro" if readonly else "rw"
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode={mode}", uri=True, timeout=30, isolation_level=None)
    if not readonly:
        db.execute("PRAGMA synchronous=NORMAL")  # with WAL: consistent after a crash, at far fewer fsyncs
    return db


def open_checked(path: Path, readonly: bool = True) -> sqlite3.Connection:
    """A connection to an existing, whole study store; StoreError / StoreDamaged otherwise."""
    run = path.parent
    if not path.exists():
        raise StoreError(f"{run} holds no study (expected {path})")
    if not path.is_file():
        raise StoreError(f"{path} is not a file")
    if path.stat().st_size == 0:
        raise StoreDamaged(
            f"{path} is empty (0 bytes): no study is recorded in it (a search stopped while creating it, or the file "
            f"was emptied). Nothing in it can be read{_weights_note(run)}. Start a new search with another --out, or "
            f"delete {path} and search again in {run}")
    try:
        db = _connect(path, readonly)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path}{' read-only' if readonly else ''} ({exc})") from exc
    try:
        problems = [row[0] for row in db.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise StoreDamaged(_damaged(path, db, "; ".join(problems[:3])))
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            raise StoreDamaged(
                f"{path} is an empty SQLite database: it holds no study{_weights_note(run)}. Start a new search with "
                f"another --out, or delete {path} and search again in {run}")
        missing_tables = [t for t in TABLES if t not in tables]
        if missing_tables:
            raise StoreDamaged(f"{path} is not a nasforge study store (it has no {', '.join(missing_tables)} table); "
                               "give the run directory a search wrote")
        keys = {row[0] for row in db.execute("SELECT key FROM meta")}
        missing = [k for k in REQUIRED_META if k not in keys]
        if missing:
            count = db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
            raise StoreDamaged(
                f"{path} is incomplete: it has no {' and no '.join(missing)} record (a search stopped while creating it "
                f"with an older nasforge, or the file was edited). It holds {count} trial(s){_weights_note(run)}, "
                f"but without {'them' if len(missing) > 1 else 'it'} the study can be neither resumed nor reported; "
                f"start a new search with another --out, or delete {path} and search again in {run}")
    except sqlite3.DatabaseError as exc:
        db.close()
        raise StoreDamaged(_damaged(path, None, str(exc))) from exc
    except StoreError:
        db.close()
        raise
    return db


def _weights_note(run: Path) -> str:
    kept = sorted((run / "weights").glob("trial_*.pt")) if (run / "weights").is_dir() else []
    final = (run / "final.pt").exists()
    if not kept and not final:
        return ""
    files = ([f"{len(kept)} trial weights file(s) in {run / 'weights'}"] if kept else []) + ([f"{run / 'final.pt'}"] if final else [])
    return f" (the run directory still has {' and '.join(files)})"


def _damaged(path: Path, db: sqlite3.Connection | None, problem: str) -> str:
    """What is wrong with a store that fails SQLite's check, what can still be read, how to recover."""
    readable = []
    try:
        probe = db or _connect(path, readonly=True)
        try:
            try:
                keys = [row[0] for row in probe.execute("SELECT key FROM meta")]
                readable.append(f"metadata ({', '.join(keys) or 'none'})")
            except sqlite3.DatabaseError:
                pass
            count = 0
            try:
                for _ in probe.execute("SELECT id, status FROM trials ORDER BY id"):
                    count += 1
            except sqlite3.DatabaseError:
                pass
            if count:
                readable.append(f"{count} trial row(s)")
        finally:
            if db is None:
                probe.close()
    except sqlite3.Error:
        pass
    still = f"Still readable: {', '.join(readable)}" if readable else "Nothing in it can be read"
    what = ("is not a readable nasforge study store (another kind of file, or one damaged from its first page)"
            if "not a database" in problem else "is damaged")
    return (f"{path} {what}: SQLite reports {problem}. {still}{_weights_note(path.parent)}. "
            f"To recover, copy the run directory, then rebuild the store from what SQLite can read: "
            f"sqlite3 {path} .recover | sqlite3 recovered.sqlite, and put recovered.sqlite in place of {path.name} "
            "(nasforge checks it again on open); or start a new search with another --out")
