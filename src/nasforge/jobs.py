"""What a trial's evaluation is asked to do: for how many epochs, and from which weights.

A new candidate gets the scheduler's options (a rung's epochs, the median-stopping curve); under
weight inheritance it starts from its first parent whose weights were kept and, outside successive
halving, trains only `finetune_epochs`. A promotion continues the trial's own weights for the
epochs between its rungs. The study records a job beside each trial in flight; `evaluator_options`
is the part of it that reaches `Evaluator.evaluate`.
"""

from __future__ import annotations

from typing import Any

from .evaluate.evaluator import Warmstart
from .rundir import RunDir
from .schedule import Promotion, Scheduler
from .space.base import SearchSpace
from .store import Store, TrialRecord
from .strategy.base import Candidate


def evaluator_options(job: dict[str, Any]) -> dict[str, Any]:
    """The part of a job the evaluator takes; only what is set, so evaluators that do not train
    (table look-ups) need not accept options they would ignore."""
    return {k: job[k] for k in ("epochs", "warmstart", "prune_below", "trial") if k in job}


class Jobs:
    def __init__(self, space: SearchSpace, store: Store, rundir: RunDir, scheduler: Scheduler, inherit: bool = False,
                 finetune_epochs: int = 2):
        self.space, self.store, self.rundir, self.scheduler = space, store, rundir, scheduler
        self.inherit, self.finetune_epochs = inherit, finetune_epochs

    def new(self, cand: Candidate) -> dict[str, Any]:
        """The job of a new candidate (or of one run again after a crash)."""
        job: dict[str, Any] = dict(self.scheduler.job_options(self.store))
        if self.inherit:
            for parent_id in cand.parents:
                path = self.rundir.weights_path(parent_id)
                parent = self.store.trial(parent_id)
                if path.exists() and parent is not None:
                    job["warmstart"] = Warmstart(self.rundir.load_weights(path), self.space.from_json(parent.genome))
                    job["inherited_from"] = parent_id
                    if not self.scheduler.multi_fidelity:  # a rung's epochs stand; otherwise a short fine-tune
                        job["epochs"] = self.finetune_epochs
                    break
        return job

    def promotion(self, promotion: Promotion, record: TrialRecord) -> dict[str, Any]:
        """The job of a trial promoted to a higher rung: its own weights, trained the epochs between."""
        return {"epochs": promotion.to_epochs - promotion.from_epochs, "promotion": promotion.to_epochs,
                "warmstart": Warmstart(self.rundir.load_weights(self.rundir.weights_path(record.id)))}
