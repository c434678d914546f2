"""Which trials' weights a study keeps on disk (RUN/weights/trial_NNNNN.pt) while it searches.

Kept: the best `keep_top` complete trials (the returned model is made from them), and every trial
the search still needs: with several objectives the Pareto front (the study's result), with weight
inheritance the most recent complete trials (parents-to-be), and the members of the scheduler's
open rungs (successive halving continues them). The rest are deleted as soon as they drop out.
RunDir (rundir.py) writes and deletes the files; this decides which.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .objectives import pareto_front
from .rundir import RunDir
from .schedule import Scheduler
from .store import Store


class WeightRetention:
    def __init__(self, rundir: RunDir, store: Store, scheduler: Scheduler, keep_top: int, objectives: Sequence[str] = (),
                 inherit: bool = False, keep_recent: int = 20):
        self.rundir, self.store, self.scheduler = rundir, store, scheduler
        self.keep_top, self.objectives, self.inherit, self.keep_recent = keep_top, tuple(objectives), inherit, keep_recent

    def protected(self) -> set[int]:
        """Trials whose weights are still needed: parents-to-be (inheritance), rung members (halving)
        and the Pareto front (several objectives), which is the study's result."""
        ids: set[int] = set()
        if len(self.objectives) >= 2:
            ids.update(t.id for t in pareto_front(self.store.trials("complete"), self.objectives))
        if self.inherit:
            recent = [t.id for t in self.store.trials("complete")][-self.keep_recent:]
            ids.update(recent)
        ids.update(self.scheduler.protected)
        return ids

    def keep(self, trial_id: int, state_dict: dict[str, Any], reward: float | None) -> None:
        """Save a finished trial's weights if it ranks among the best or the search needs them."""
        # With objectives the trial may join the front: keep it now, prune() decides after.
        always = self.inherit or len(self.objectives) >= 2 or trial_id in self.protected()
        others = [t.reward for t in self.store.top(self.keep_top, exclude=trial_id) if t.reward is not None]  # all that decides
        self.rundir.keep_weights(trial_id, state_dict, reward, others, self.keep_top, always)

    def prune(self) -> None:
        """Delete the weights of every trial that is neither among the best nor still needed."""
        top = self.store.top(self.keep_top)
        self.rundir.prune_weights({t.id for t in top} | self.protected())
