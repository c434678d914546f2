"""The search loop: ask the strategy, evaluate through an executor, tell the result, record it all.

Stops at a trial budget, a wall-clock budget or a target reward, whichever comes first. A genome
already evaluated is never trained again: the strategy is told the stored result instead.
The loop alone lives here; it calls on its collaborators for the rest: the scheduler (schedule/:
when a candidate starts, continues or stops), the run directory (rundir.py: lock and files), the
weights kept (retention.py) and the returned model (final.py).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .budget import Budget
from .callbacks import Callback
from .errors import WriteFailed
from .evaluate.evaluator import Evaluator, Result
from .execute.base import LOST, Executor
from .execute.serial import SerialExecutor
from .final import FinalModel, FinalOptions
from .jobs import Jobs, evaluator_options
from .objectives import pareto_front
from .report.progress import Progress, log_trial
from .retention import WeightRetention
from .rundir import RunDir
from .schedule import FIFO, Decided, Promotion, Scheduler
from .space.base import SearchSpace
from .store import Store, TrialRecord
from .strategy.base import Candidate, Observation, Strategy

# Consecutive already-seen genomes after which the space is taken as exhausted.
MAX_DUPLICATES = 500

# WARNING for every retry (report/progress.py logs every finished trial); silent unless the user
# configures logging (the CLI shows its progress bar instead).
log = logging.getLogger("nasforge")


def trial_seed(study_seed: int, trial_id: int) -> int:
    return (study_seed * 1_000_003 + trial_id) % (2**31)


class Study:
    """One search: `run()` searches until the budget is spent, then makes the returned model.

    `budget` bounds the search; `keep_top` trials' weights are kept (final.ensemble at least);
    `final` says how the returned model is made (final.py); `executor` runs the evaluations (serial
    by default), a trial whose worker died runs again up to `max_retries` times; `scheduler` decides
    when candidates start, continue or stop (FIFO by default); `inherit`: children start from a
    parent's weights and train `finetune_epochs`; `callbacks` run after each trial; `objectives`: two
    or more make the result a Pareto front."""

    def __init__(
        self,
        space: SearchSpace,
        strategy: Strategy,
        evaluator: Evaluator,
        store: Store,
        run_dir: str | Path | RunDir,
        budget: Budget,
        seed: int = 0,
        keep_top: int = 5,
        final: FinalOptions | None = None,
        executor: Executor | None = None,
        max_retries: int = 2,
        scheduler: Scheduler | None = None,
        inherit: bool = False,
        finetune_epochs: int = 2,
        progress: bool = True,
        callbacks: tuple[Callable[[Study, TrialRecord], None], ...] = (),
        objectives: tuple[str, ...] = (),
    ):
        self.space, self.strategy, self.evaluator, self.store = space, strategy, evaluator, store
        # The folder, its lock and its weights files (rundir.py); the study holds the lock while it runs.
        self.rundir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
        self.run_dir = self.rundir.path
        self.budget, self.seed = budget, seed
        # The returned model (final.py): made from the best trials when the search ends.
        final = final or FinalOptions()
        final.check(evaluator, objectives)
        self.final_model = FinalModel(final, space, evaluator, store, self.rundir)
        # The returned model averages the best `final.ensemble` trials: their weights must be kept.
        self.keep_top = max(keep_top, final.ensemble)
        self.executor = executor or SerialExecutor(evaluator)
        self.max_retries = max_retries  # runs again of a trial whose worker died under it
        # When candidates start, continue or stop (FIFO, successive halving, median stopping).
        self.scheduler = scheduler or FIFO()
        self.inherit = inherit
        # How long each candidate trains and from which weights (jobs.py: inheritance, promotions).
        self.jobs = Jobs(space, store, self.rundir, self.scheduler, inherit, finetune_epochs)
        # Which trials' weights stay on disk (retention.py); with inheritance, enough recent ones that
        # every living member of an evolving population can be a parent.
        self.weights = WeightRetention(self.rundir, store, self.scheduler, self.keep_top, objectives, inherit,
                                       keep_recent=2 * int(getattr(strategy, "population_size", 10)))
        self.show_progress = progress
        self.callbacks = callbacks
        # With several objectives the result is a Pareto front: its members' weights are all kept.
        self.objectives = tuple(objectives)
        self.stop_reason: str | None = None

    # -- results -------------------------------------------------------------------------------
    @property
    def trials(self) -> list[TrialRecord]:
        return self.store.trials()

    @property
    def best(self) -> TrialRecord | None:
        top = self.store.top(1)
        return top[0] if top else None

    @property
    def front(self) -> list[TrialRecord]:
        """The complete trials on the Pareto front of the study's objectives (empty without them)."""
        if len(self.objectives) < 2:
            return []
        return pareto_front(self.store.trials("complete"), self.objectives)

    @property
    def final(self) -> dict[str, Any] | None:
        """The returned model: its trial, test metrics and weights file (after the search ends)."""
        return self.final_model.record

    def best_model(self) -> torch.nn.Module:
        """The returned model (an Ensemble of several trials' networks when final_ensemble > 1)."""
        return self.final_model.load()

    def weights_path(self, trial_id: int) -> Path:
        return self.rundir.weights_path(trial_id)

    # -- the loop ------------------------------------------------------------------------------
    def _elapsed(self) -> float:
        return self._elapsed_before + time.monotonic() - self._session_start

    def _best_reward(self) -> float | None:
        best = self.best
        return best.reward if best else None

    def _should_stop(self) -> str | None:
        best = self._best_reward() if self.budget.target is not None else None
        return self.budget.stop_reason(self.store.count(), self._elapsed(), best)

    def _state(self) -> dict[str, Any]:
        """Everything that must survive a crash beside the trials: the strategy's and the scheduler's state."""
        return {"strategy": self.strategy.state_dict(), "scheduler": self.scheduler.state_dict()}

    def _load_state(self) -> None:
        state = self.store.strategy_state()
        if state is None:
            return
        self.strategy.load_state_dict(state["strategy"])
        scheduled = state.get("scheduler") or state.get("halving")  # "halving": runs stored before schedulers
        if scheduled:
            self.scheduler.load_state_dict(scheduled)
            self.scheduler.requeue()

    def run(self) -> Study:
        """Search until the budget is spent, then finalize. Holds the run's lock throughout; a write
        that fails (a full disk) ends the run with a RunDirError saying what is safe and how to go on."""
        self.rundir.acquire()
        try:
            self._search()
            self.finalize()
            self.store.checkpoint()
            for callback in self.callbacks:
                if isinstance(callback, Callback):
                    callback.on_search_end(self)
        except WriteFailed as exc:
            raise WriteFailed(self.rundir.write_failure(exc, self.store)) from exc
        finally:
            self.rundir.release()
        return self

    def _note(self, line: str) -> None:
        """A line about the run's own set-up (supernet training): logged, and shown beside the progress bar."""
        log.info(line)
        if self.show_progress:
            print(line, file=sys.stderr, flush=True)

    def _search(self) -> None:
        self._session_start = time.monotonic()
        self._elapsed_before = float(self.store.get("elapsed_seconds", 0.0))
        # One-shot evaluators train their supernet here (or resume it from its checkpoint in the run).
        self.evaluator.prepare(self.run_dir, log=self._note)
        self._load_state()
        finished = len(self.store.trials()) - len(self.store.trials("running"))
        progress = Progress(self.budget, finished, self._best_reward(), enabled=self.show_progress)
        in_flight: dict[int, tuple[Candidate, dict[str, Any]]] = {}  # trial -> candidate, job options
        in_flight_keys: dict[str, int] = {}
        waiting: dict[int, list[Candidate]] = {}  # duplicates of an in-flight genome, told with it
        try:
            # Trials that were running when a previous process died: the strategy already asked
            # for them (its stored state says so), so evaluate them again under the same id.
            for rec in self.store.trials("running"):
                rerun = Candidate(self.space.from_json(rec.genome), tuple(rec.parents), rec.operator)
                self.store.restart_trial(rec.id)
                self._submit(rec.id, rerun, rec.seed, self.jobs.new(rerun), in_flight, in_flight_keys, progress)
            duplicates = 0
            while True:
                self.stop_reason = self._should_stop()
                while len(in_flight) < self.executor.capacity:
                    if self.stop_reason in (None, "trials"):
                        # Promotions continue trials already counted, so a spent trial budget allows them.
                        promotion = self.scheduler.next_promotion()
                        if promotion is not None:
                            self._promote(promotion, in_flight, in_flight_keys, progress)
                            continue
                        if not self.scheduler.wants_new():
                            break  # e.g. a rung is out: wait for its results
                    if self.stop_reason is not None:
                        break
                    cand = self.strategy.ask()
                    if cand is None:
                        break
                    key = self.space.key(cand.genome)
                    seen = self.store.finished_by_key(key)
                    if seen is not None or key in in_flight_keys:
                        duplicates += 1
                        if duplicates > MAX_DUPLICATES:
                            self.stop_reason = "exhausted"
                            break
                        if seen is not None:
                            self._tell(seen.id, cand, seen.reward if seen.status != "failed" else None, None, seen.metrics)
                            self.store.save_state(self._state(), self._elapsed())
                        else:
                            waiting.setdefault(in_flight_keys[key], []).append(cand)
                        continue
                    duplicates = 0
                    seed = trial_seed(self.seed, self.store.count() + 1)
                    # Joins the scheduler (a rung) in the same transaction as the trial is written.
                    self.scheduler.start(self.store.count() + 1)
                    trial_id = self.store.add_trial(
                        self.space.to_json(cand.genome), key, list(cand.parents), cand.operator, seed, self._state()
                    )
                    self._submit(trial_id, cand, seed, self.jobs.new(cand), in_flight, in_flight_keys, progress)
                    # With several workers free, the budget may run out between two submissions.
                    self.stop_reason = self._should_stop()
                if not in_flight:
                    if self.stop_reason in (None, "trials", "strategy has nothing more to ask"):
                        # Nothing more will join (budget reached, or the strategy waits for these very
                        # results): let the scheduler decide with the results it has (close a rung).
                        decided = self.scheduler.close()
                        if decided:
                            self._decide(decided)
                            continue
                    if self.stop_reason is None:
                        self.stop_reason = "strategy has nothing more to ask"
                    break
                trial_id, result = self.executor.next_result()
                cand, job = in_flight[trial_id]
                if result.status == LOST:
                    if self._retry(trial_id, cand, job):
                        continue
                    attempts = self.store.require_trial(trial_id).attempts
                    result = Result("failed", error=f"{result.error}; gave up after {attempts} attempt(s)")
                in_flight.pop(trial_id)
                in_flight_keys.pop(self.space.key(cand.genome), None)
                record = self._finish(trial_id, cand, job, result, waiting.pop(trial_id, []))
                log_trial(record, self.evaluator.reward_name)
                progress.trial_done(record, self._best_reward(), self._elapsed(), promoted="promotion" in job)
                for callback in self.callbacks:
                    callback(self, record)
        except KeyboardInterrupt:
            self.stop_reason = "interrupted"
            progress.close()
            raise
        finally:
            # Workers hold cores (and Ray a cluster); whatever is still out stays 'running' in the
            # store and is run again on resume.
            self.executor.close()
        progress.close()

    # -- submitting, retrying, telling -------------------------------------------------------------
    def _promote(self, promotion: Promotion, in_flight: dict, in_flight_keys: dict, progress: Progress) -> None:
        rec = self.store.require_trial(promotion.trial)
        cand = Candidate(self.space.from_json(rec.genome), tuple(rec.parents), rec.operator)
        self._submit(rec.id, cand, rec.seed, self.jobs.promotion(promotion, rec), in_flight, in_flight_keys, progress)

    def _retry(self, trial_id: int, cand: Candidate, job: dict[str, Any]) -> bool:
        """The worker running this trial died. Run it again (same id, same seed) while attempts
        remain; False lets the caller record the lost result as the trial's failure."""
        rec = self.store.require_trial(trial_id)
        if rec.attempts > self.max_retries:
            return False
        self.store.restart_trial(trial_id)
        log.warning("trial %d: its worker was lost; running it again (attempt %d of %d)", trial_id, rec.attempts + 1,
                    self.max_retries + 1)
        self.executor.submit(trial_id, cand.genome, rec.seed, **evaluator_options(job))
        return True

    def _submit(self, trial_id: int, cand: Candidate, seed: int, job: dict[str, Any], in_flight: dict, in_flight_keys: dict,
                progress: Progress) -> None:
        in_flight[trial_id] = (cand, job)
        in_flight_keys[self.space.key(cand.genome)] = trial_id
        note = f" (rung {job['promotion']} epochs)" if "promotion" in job else ""
        progress.started(trial_id, self.space.describe(cand.genome) + note)
        if self.evaluator.takes_trial_id:
            job["trial"] = trial_id  # EpochInfo.trial and ctx.trial, where the trial trains
        for callback in self.callbacks:
            if isinstance(callback, Callback):
                callback.on_trial_start(self, trial_id, cand.genome)
        self.executor.submit(trial_id, cand.genome, seed, **evaluator_options(job))

    def _tell(self, trial_id: int, cand: Candidate, reward: float | None, epochs: int | None,
              metrics: dict[str, Any] | None = None) -> None:
        # The strategy learns at which fidelity (epochs) the reward was measured, and every measure
        # of the trial (cost measures included), from which Pareto strategies read their objectives.
        self.strategy.tell(trial_id, cand, Observation(reward, metrics or {}, epochs))

    def _decide(self, decided: list[Decided]) -> None:
        for d in decided:
            rec = self.store.require_trial(d.trial)
            cand = Candidate(self.space.from_json(rec.genome), tuple(rec.parents), rec.operator)
            self._tell(d.trial, cand, d.reward if d.reward is not None else rec.reward, d.epochs, rec.metrics)
        self.store.save_state(self._state(), self._elapsed())

    def _finish(self, trial_id: int, cand: Candidate, job: dict[str, Any], result: Result, duplicates: list[Candidate]) -> TrialRecord:
        reward = result.reward if result.status in ("complete", "pruned") else None
        if "inherited_from" in job:
            result.metrics["inherited_from"] = job["inherited_from"]
        if "promotion" in job:
            return self._finish_promotion(trial_id, job, result)
        epochs = job.get("epochs", len(result.curve) or None)
        if result.state_dict is not None:
            self.weights.keep(trial_id, result.state_dict, result.reward)
        if self.scheduler.multi_fidelity:
            result.metrics["fidelity"] = epochs
        # A rung ranks complete results only; under FIFO a pruned trial's partial score is its result.
        scored = reward if result.status == "complete" or not self.scheduler.multi_fidelity else None
        for d in self.scheduler.record(trial_id, scored, epochs):
            self._tell_decided(d, trial_id, cand, reward, result.metrics)
        for dup in duplicates:  # the same genome asked again while it trained: the same result
            self._tell(trial_id, dup, reward, epochs, result.metrics)
        self.store.finish_trial(
            trial_id, result.status, reward, result.metrics, result.params, result.train_seconds, result.curve,
            result.error, self._state(), self._elapsed(),
        )
        self.weights.prune()
        return self.store.require_trial(trial_id)

    def _tell_decided(self, d: Decided, trial_id: int, cand: Candidate, reward: float | None,
                      metrics: dict[str, Any] | None = None) -> None:
        if d.trial == trial_id:
            self._tell(d.trial, cand, reward, d.epochs, metrics)
            return
        rec = self.store.require_trial(d.trial)
        other = Candidate(self.space.from_json(rec.genome), tuple(rec.parents), rec.operator)
        self._tell(d.trial, other, d.reward if d.reward is not None else rec.reward, d.epochs, rec.metrics)

    def _finish_promotion(self, trial_id: int, job: dict[str, Any], result: Result) -> TrialRecord:
        """A trial trained further at a higher rung: its record now shows the highest fidelity reached."""
        rec = self.store.require_trial(trial_id)
        cand = Candidate(self.space.from_json(rec.genome), tuple(rec.parents), rec.operator)
        ok = result.status == "complete"
        decided = self.scheduler.record(trial_id, result.reward if ok else None, job["promotion"])
        for d in decided:
            self._tell_decided(d, trial_id, cand, result.reward if ok else rec.reward,
                               {**rec.metrics, **result.metrics} if ok else rec.metrics)
        if ok:
            if result.state_dict is not None:
                self.weights.keep(trial_id, result.state_dict, result.reward)
            offset = len(rec.curve)
            curve = rec.curve + [{**p, "epoch": p["epoch"] + offset} for p in result.curve]
            metrics = {**rec.metrics, **result.metrics, "fidelity": job["promotion"]}
            self.store.finish_trial(trial_id, "complete", result.reward, metrics, rec.params,
                                    (rec.train_seconds or 0) + result.train_seconds, curve, None, self._state(), self._elapsed())
        else:
            # The lower rung's result stands; the failed promotion is noted, not fatal.
            self.store.finish_trial(trial_id, rec.status, rec.reward, rec.metrics, rec.params,
                                    (rec.train_seconds or 0) + result.train_seconds, rec.curve,
                                    f"promotion to {job['promotion']} epochs failed: {result.error}", self._state(), self._elapsed())
        self.weights.prune()
        return self.store.require_trial(trial_id)

    # -- the result ----------------------------------------------------------------------------
    def finalize(self) -> dict[str, Any] | None:
        """Make the returned model from the best trials, save it as final.pt and score it once on the
        test split (final.py: FinalModel.make)."""
        return self.final_model.make()
