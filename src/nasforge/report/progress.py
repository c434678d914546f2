"""The live progress line: trials done / budget, best reward, current candidate, elapsed and remaining."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

if TYPE_CHECKING:
    from ..store import TrialRecord

# INFO for every finished trial, WARNING for every failure; silent unless the user configures
# logging (the CLI shows the progress bar instead).
log = logging.getLogger("nasforge")


def log_trial(record: TrialRecord, reward_name: str) -> None:
    if record.status == "failed":
        log.warning("trial %d failed: %s", record.id, record.error)
        return
    # A pruned trial stopped by the median rule is the rule working; one that diverged has no score.
    level = logging.WARNING if record.reward is None else logging.INFO
    log.log(level, "trial %d %s: %s=%s params=%s %.1fs%s", record.id, record.status, reward_name,
            f"{record.reward:.4f}" if record.reward is not None else "-", record.params, record.train_seconds or 0.0,
            f" ({record.error})" if record.error else "")


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


class Progress:
    def __init__(self, budget: Any, done: int, best: float | None, enabled: bool = True):
        self.budget = budget
        self.best = best
        self.current = ""
        self.bar = tqdm(
            total=budget.trials, initial=done, unit="trial", desc="search", disable=not enabled,
            file=sys.stderr, dynamic_ncols=True, leave=True,
        )
        self._post()

    def _post(self, elapsed: float | None = None) -> None:
        fields = {"best": "-" if self.best is None else f"{self.best:.4f}"}
        if self.budget.seconds is not None and elapsed is not None:
            fields["time"] = f"{_clock(elapsed)}/{_clock(self.budget.seconds)}"
        if self.current:
            fields["now"] = self.current[:48]
        self.bar.set_postfix(fields, refresh=True)

    def started(self, trial_id: int, description: str) -> None:
        self.current = f"#{trial_id} {description}"
        self._post()

    def trial_done(self, record: Any, best: float | None, elapsed: float, promoted: bool = False) -> None:
        """A trial finished. A promotion (halving) finishes a trial already counted again under its
        id: the bar counts trials against the trial budget, not finishes."""
        self.best = best
        if not promoted:
            self.bar.update(1)
        self._post(elapsed)

    def close(self) -> None:
        self.bar.close()
