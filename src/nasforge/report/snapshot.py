"""A read-only snapshot of a study: everything a report shows, read without ever writing the store.

A report may run while a search is writing (the live view), so it opens the SQLite file with
`mode=ro` (store.open_checked, which also refuses an empty, incomplete or damaged store): WAL lets
one reader see a consistent state while the single writer carries on.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..store import STORE_FILE, TrialRecord, open_checked

_COLUMNS = ("id, genome, genome_key, parents, operator, status, reward, metrics, params, train_seconds, curve, seed, "
            "error, started_at, finished_at, attempts")


@dataclass
class RunSnapshot:
    run_dir: Path
    config: dict[str, Any]
    dataset: dict[str, Any]
    space: dict[str, Any]
    final: dict[str, Any] | None
    elapsed_seconds: float | None
    trials: list[TrialRecord] = field(default_factory=list)
    # What the reward measures (the evaluator's reward_name: "auto" resolved by the task, a custom
    # metric's name); stored since rewards became per task. Older runs: the config's reward.
    reward: str | None = None

    @property
    def complete(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.status == "complete" and t.reward is not None]

    @property
    def reward_name(self) -> str:
        return self.reward or str(self.config.get("reward", "reward"))

    def trial(self, trial_id: int) -> TrialRecord | None:
        return next((t for t in self.trials if t.id == trial_id), None)

    @property
    def best(self) -> TrialRecord | None:
        """The returned model once the search has finished; the best complete trial before that."""
        if self.final is not None and (t := self.trial(self.final["trial"])) is not None:
            return t
        complete = self.complete
        return max(complete, key=lambda t: (t.reward, -t.id)) if complete else None

    @property
    def finished(self) -> bool:
        return self.final is not None


def read_run(run_dir: str | Path) -> RunSnapshot:
    """One consistent read of a run directory's store (a single read transaction)."""
    run_dir = Path(run_dir)
    path = run_dir / STORE_FILE
    db = open_checked(path, readonly=True)
    try:
        with db:
            db.execute("BEGIN")  # meta and trials from the same moment, even with a writer active
            meta = {key: json.loads(value) for key, value in db.execute("SELECT key, value FROM meta")}
            rows = db.execute(f"SELECT {_COLUMNS} FROM trials ORDER BY id").fetchall()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a readable nasforge study store ({exc})") from exc
    finally:
        db.close()
    return RunSnapshot(
        run_dir=run_dir,
        config=meta.get("config") or {},
        dataset=meta.get("dataset") or {},
        space=meta.get("space") or {},
        final=meta.get("final"),
        elapsed_seconds=meta.get("elapsed_seconds"),
        trials=[_record(row) for row in rows],
        reward=meta.get("reward_name"),
    )


def _record(row: tuple) -> TrialRecord:
    (id_, genome, key, parents, operator, status, reward, metrics, params, secs, curve, seed, error, started, finished, attempts) = row
    return TrialRecord(
        id=id_, genome=json.loads(genome), genome_key=key, parents=json.loads(parents), operator=operator, status=status,
        seed=seed, reward=reward, metrics=json.loads(metrics) if metrics else {}, params=params, train_seconds=secs,
        curve=json.loads(curve) if curve else [], error=error, started_at=started, finished_at=finished, attempts=attempts,
    )
