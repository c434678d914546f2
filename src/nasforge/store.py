"""The study's record: one SQLite file, one writer (the driver process).

Every ask is written as a 'running' trial together with the strategy state after that ask, and every
result together with the strategy state after that tell, each in one transaction. So whatever the
moment of a crash, the stored state and the stored trials agree: on resume, 'running' trials are
evaluated again and told to the restored strategy, and no completed trial is lost or duplicated.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import StoreError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
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
CREATE INDEX IF NOT EXISTS trials_key ON trials (genome_key);
CREATE TABLE IF NOT EXISTS strategy_state (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL);
"""

STORE_FILE = "study.sqlite"


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
    def __init__(self, path: str | Path, create: bool = False):
        self.path = Path(path)
        if not create and not self.path.exists():
            raise StoreError(f"no study store at {self.path}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a nasforge study store ({exc})") from exc

    @classmethod
    def in_dir(cls, run_dir: str | Path, create: bool = False) -> Store:
        run_dir = Path(run_dir)
        if not create and not (run_dir / STORE_FILE).exists():
            raise StoreError(f"{run_dir} holds no study (expected {run_dir / STORE_FILE})")
        return cls(run_dir / STORE_FILE, create=create)

    def close(self) -> None:
        self.db.close()

    # -- metadata ----------------------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    # -- trials ------------------------------------------------------------------------------
    def _save_state(self, state: dict[str, Any] | None) -> None:
        if state is not None:
            self.db.execute("INSERT OR REPLACE INTO strategy_state (id, state) VALUES (1, ?)", (json.dumps(state),))

    def add_trial(self, genome: Any, genome_key: str, parents: list[int], operator: str, seed: int, state: dict[str, Any] | None) -> int:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            cur = self.db.execute(
                "INSERT INTO trials (genome, genome_key, parents, operator, status, seed, started_at) VALUES (?, ?, ?, ?, 'running', ?, ?)",
                (json.dumps(genome), genome_key, json.dumps(parents), operator, seed, time.time()),
            )
            self._save_state(state)
            return int(cur.lastrowid)

    def restart_trial(self, trial_id: int) -> None:
        self.db.execute("UPDATE trials SET attempts = attempts + 1, started_at = ? WHERE id = ?", (time.time(), trial_id))

    def finish_trial(self, trial_id: int, status: str, reward: float | None, metrics: dict[str, Any], params: int | None,
                     train_seconds: float | None, curve: list[dict[str, float]], error: str | None,
                     state: dict[str, Any] | None, elapsed: float | None = None) -> None:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute(
                "UPDATE trials SET status = ?, reward = ?, metrics = ?, params = ?, train_seconds = ?, curve = ?, error = ?,"
                " finished_at = ? WHERE id = ?",
                (status, reward, json.dumps(metrics), params, train_seconds, json.dumps(curve), error, time.time(), trial_id),
            )
            self._save_state(state)
            if elapsed is not None:
                self.set("elapsed_seconds", elapsed)

    def save_state(self, state: dict[str, Any], elapsed: float | None = None) -> None:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
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

    def finished_by_key(self, genome_key: str) -> TrialRecord | None:
        row = self.db.execute(
            "SELECT * FROM trials WHERE genome_key = ? AND status != 'running' ORDER BY id LIMIT 1", (genome_key,)
        ).fetchone()
        return self._record(row) if row else None

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM trials").fetchone()[0])
