"""The search loop: ask the strategy, evaluate through an executor, tell the result, record it all.

Stops at a trial budget, a wall-clock budget or a target reward, whichever comes first. A genome
already evaluated is never trained again: the strategy is told the stored result instead.
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
from .data.datasets import make_views
from .ensemble import combine
from .errors import RunDirError, WriteFailed
from .evaluate.evaluator import Evaluator, Result, Warmstart
from .execute.base import LOST, Executor, SerialExecutor
from .report.progress import Progress
from .rundir import RunDir
from .schedule import FIFO, Decided, Promotion, Scheduler
from .space.base import SearchSpace
from .store import Store, TrialRecord
from .strategy.base import Candidate, Observation, Strategy

# Consecutive already-seen genomes after which the space is taken as exhausted.
MAX_DUPLICATES = 500

# INFO for every finished trial, WARNING for every failure and retry; silent unless the user
# configures logging (the CLI shows its progress bar instead).
log = logging.getLogger("nasforge")


def trial_seed(study_seed: int, trial_id: int) -> int:
    return (study_seed * 1_000_003 + trial_id) % (2**31)


def _evaluator_options(job: dict[str, Any]) -> dict[str, Any]:
    """The part of a job the evaluator takes; only what is set, so evaluators that do not train
    (table look-ups) need not accept options they would ignore."""
    return {k: job[k] for k in ("epochs", "warmstart", "prune_below", "trial") if k in job}


def log_trial(record: TrialRecord, reward_name: str) -> None:
    if record.status == "failed":
        log.warning("trial %d failed: %s", record.id, record.error)
        return
    # A pruned trial stopped by the median rule is the rule working; one that diverged has no score.
    level = logging.WARNING if record.reward is None else logging.INFO
    log.log(level, "trial %d %s: %s=%s params=%s %.1fs%s", record.id, record.status, reward_name,
            f"{record.reward:.4f}" if record.reward is not None else "-", record.params, record.train_seconds or 0.0,
            f" ({record.error})" if record.error else "")


class Study:
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
        final_epochs: int | None = None,
        final_data: str = "train",
        final_ensemble: int = 1,
        final_seeds: int = 1,
        final_candidates: int = 1,
        executor: Executor | None = None,
        max_retries: int = 2,
        scheduler: Scheduler | None = None,
        inherit: bool = False,
        finetune_epochs: int = 2,
        progress: bool = True,
        callbacks: tuple[Callable[[Study, TrialRecord], None], ...] = (),
        objectives: tuple[str, ...] = (),
        test_views: dict[str, Any] | None = None,
    ):
        self.space, self.strategy, self.evaluator, self.store = space, strategy, evaluator, store
        # The folder, its lock and its weights files (rundir.py); the study holds the lock while it runs.
        self.rundir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
        self.run_dir = self.rundir.path
        self.budget, self.seed, self.keep_top, self.final_epochs = budget, seed, keep_top, final_epochs
        if final_data not in ("train", "train+val"):
            raise ValueError(f"final_data must be 'train' or 'train+val', got {final_data!r}")
        self.final_data = final_data  # train+val: the final retrain also learns from the validation split
        for name, count in (("final_ensemble", final_ensemble), ("final_seeds", final_seeds)):
            if count < 1:
                raise ValueError(f"{name} must be >= 1, got {count}")
            if count > 1 and len(objectives) >= 2:
                raise ValueError(f"{name}: a search with several objectives returns its Pareto front, not one model")
        if final_seeds > 1 and not final_epochs:
            raise ValueError("final_seeds: retrains from several seeds need final_epochs (a trial's weights exist once)")
        if final_candidates < 1 or (final_candidates > 1 and (not final_epochs or len(objectives) >= 2)):
            raise ValueError(f"final_candidates ({final_candidates}): the best N trials are retrained from scratch and the best "
                             "by validation returned; N >= 1, and N > 1 needs final_epochs and a single objective")
        # The best N trials by the search's reward are retrained and the best by validation returned:
        # for rewards that rank only roughly (one-shot scores from a supernet).
        self.final_candidates = final_candidates
        if final_epochs and not evaluator.can_retrain:
            raise ValueError(f"final_epochs: {type(evaluator).__name__} cannot retrain a network (it implements no retrain); "
                             "drop final_epochs to return the search trial's own weights")
        # The returned model averages the best `final_ensemble` trials: their weights must be kept.
        self.final_ensemble = final_ensemble
        self.keep_top = max(keep_top, final_ensemble)
        # Each returned network is retrained this many times from different seeds, and all are averaged.
        self.final_seeds = final_seeds
        # The returned model averages over these copies of each input (data.datasets.make_views).
        self.test_views = test_views
        self.executor = executor or SerialExecutor(evaluator)
        self.max_retries = max_retries  # runs again of a trial whose worker died under it
        # When candidates start, continue or stop (FIFO, successive halving, median stopping).
        self.scheduler = scheduler or FIFO()
        self.inherit, self.finetune_epochs = inherit, finetune_epochs
        # Enough recent weights that every living member of an evolving population can be a parent.
        self.keep_recent = 2 * int(getattr(strategy, "population_size", 10))
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
        from .objectives import pareto_front

        return pareto_front(self.store.trials("complete"), self.objectives)

    @property
    def final(self) -> dict[str, Any] | None:
        """The returned model: its trial, test metrics and weights file (after the search ends)."""
        return self.store.get("final")

    def best_model(self) -> torch.nn.Module:
        """The returned model (an Ensemble of several trials' networks when final_ensemble > 1)."""
        from .export import load_weights

        final = self.final
        if final is None:
            raise RuntimeError("the study has not finished; run() it first")
        model = self._build_final([self.store.trial(i) for i in final.get("members", [final["trial"]])], final.get("views"))
        model.load_state_dict(load_weights(self.run_dir / final["weights"]))  # final.pt (RunDir.final_path)
        return model.eval()

    def _build_final(self, members: list[TrialRecord], views: dict[str, Any] | None = None) -> torch.nn.Module:
        return combine([self.space.build(self.space.from_json(t.genome)) for t in members], make_views(views), self._task())

    def _task(self) -> str:
        """classification, multilabel or regression: how an ensemble of the returned networks averages."""
        return (self.store.get("dataset") or {}).get("task", "classification")

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
            raise WriteFailed(self._write_failure(exc)) from exc
        finally:
            self.rundir.release()
        return self

    def _write_failure(self, exc: WriteFailed) -> str:
        try:
            safe = sum(t.status != "running" for t in self.store.trials())
        except Exception:  # the store itself may be what failed; its count is then unknown
            return f"{exc}. Continue with: nasforge search --resume --out {self.run_dir}"
        free = self.rundir.free_bytes()
        room = f" ({free / 1e6:.0f} MB free there now)" if free is not None else ""
        return (f"{exc}. {safe} finished trial(s) are safe in {self.store.path}{room}; make room and continue with: "
                f"nasforge search --resume --out {self.run_dir}")

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
                cand = Candidate(self.space.from_json(rec.genome), tuple(rec.parents), rec.operator)
                self.store.restart_trial(rec.id)
                self._submit(rec.id, cand, rec.seed, self._new_job(cand), in_flight, in_flight_keys, progress)
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
                    self._submit(trial_id, cand, seed, self._new_job(cand), in_flight, in_flight_keys, progress)
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
                    attempts = self.store.trial(trial_id).attempts
                    result = Result("failed", error=f"{result.error}; gave up after {attempts} attempt(s)")
                in_flight.pop(trial_id)
                in_flight_keys.pop(self.space.key(cand.genome), None)
                record = self._finish(trial_id, cand, job, result, waiting.pop(trial_id, []))
                log_trial(record, self.evaluator.reward_name)
                progress.trial_done(record, self._best_reward(), self._elapsed())
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

    # -- jobs: how long a candidate trains and from which weights -----------------------------------
    def _new_job(self, cand: Candidate) -> dict[str, Any]:
        job: dict[str, Any] = dict(self.scheduler.job_options(self.store))
        if self.inherit:
            for parent_id in cand.parents:
                path = self.weights_path(parent_id)
                parent = self.store.trial(parent_id)
                if path.exists() and parent is not None:
                    job["warmstart"] = Warmstart(self.rundir.load_weights(path), self.space.from_json(parent.genome))
                    job["inherited_from"] = parent_id
                    if not self.scheduler.multi_fidelity:  # a rung's epochs stand; otherwise a short fine-tune
                        job["epochs"] = self.finetune_epochs
                    break
        return job

    def _promote(self, promotion: Promotion, in_flight: dict, in_flight_keys: dict, progress: Progress) -> None:
        rec = self.store.trial(promotion.trial)
        cand = Candidate(self.space.from_json(rec.genome), tuple(rec.parents), rec.operator)
        job = {"epochs": promotion.to_epochs - promotion.from_epochs, "promotion": promotion.to_epochs,
               "warmstart": Warmstart(self.rundir.load_weights(self.weights_path(rec.id)))}
        self._submit(rec.id, cand, rec.seed, job, in_flight, in_flight_keys, progress)

    def _retry(self, trial_id: int, cand: Candidate, job: dict[str, Any]) -> bool:
        """The worker running this trial died. Run it again (same id, same seed) while attempts
        remain; False lets the caller record the lost result as the trial's failure."""
        rec = self.store.trial(trial_id)
        if rec.attempts > self.max_retries:
            return False
        self.store.restart_trial(trial_id)
        log.warning("trial %d: its worker was lost; running it again (attempt %d of %d)", trial_id, rec.attempts + 1,
                    self.max_retries + 1)
        self.executor.submit(trial_id, cand.genome, rec.seed, **_evaluator_options(job))
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
        self.executor.submit(trial_id, cand.genome, seed, **_evaluator_options(job))

    def _tell(self, trial_id: int, cand: Candidate, reward: float | None, epochs: int | None,
              metrics: dict[str, Any] | None = None) -> None:
        # The strategy learns at which fidelity (epochs) the reward was measured, and every measure
        # of the trial (cost measures included), from which Pareto strategies read their objectives.
        self.strategy.tell(trial_id, cand, Observation(reward, metrics or {}, epochs))

    def _decide(self, decided: list[Decided]) -> None:
        for d in decided:
            rec = self.store.trial(d.trial)
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
            self._keep_weights(trial_id, result)
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
        self._prune_weights()
        return self.store.trial(trial_id)

    def _tell_decided(self, d: Decided, trial_id: int, cand: Candidate, reward: float | None,
                      metrics: dict[str, Any] | None = None) -> None:
        if d.trial == trial_id:
            self._tell(d.trial, cand, reward, d.epochs, metrics)
            return
        rec = self.store.trial(d.trial)
        other = Candidate(self.space.from_json(rec.genome), tuple(rec.parents), rec.operator)
        self._tell(d.trial, other, d.reward if d.reward is not None else rec.reward, d.epochs, rec.metrics)

    def _finish_promotion(self, trial_id: int, job: dict[str, Any], result: Result) -> TrialRecord:
        """A trial trained further at a higher rung: its record now shows the highest fidelity reached."""
        rec = self.store.trial(trial_id)
        cand = Candidate(self.space.from_json(rec.genome), tuple(rec.parents), rec.operator)
        ok = result.status == "complete"
        decided = self.scheduler.record(trial_id, result.reward if ok else None, job["promotion"])
        for d in decided:
            self._tell_decided(d, trial_id, cand, result.reward if ok else rec.reward,
                               {**rec.metrics, **result.metrics} if ok else rec.metrics)
        if ok:
            self._keep_weights(trial_id, result)
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
        self._prune_weights()
        return self.store.trial(trial_id)

    def _protected(self) -> set[int]:
        """Trials whose weights are still needed: parents-to-be (inheritance), rung members (halving)
        and the Pareto front (several objectives), which is the study's result."""
        ids: set[int] = set()
        if len(self.objectives) >= 2:
            ids.update(t.id for t in self.front)
        if self.inherit:
            recent = [t.id for t in self.store.trials("complete")][-self.keep_recent:]
            ids.update(recent)
        ids.update(self.scheduler.protected)
        return ids

    def _keep_weights(self, trial_id: int, result: Result) -> None:
        # With objectives the trial may join the front: keep it now, _prune_weights decides after.
        always = self.inherit or len(self.objectives) >= 2 or trial_id in self._protected()
        others = [t.reward for t in self.store.top(self.keep_top, exclude=trial_id)]  # all that decides
        self.rundir.keep_weights(trial_id, result.state_dict, result.reward, others, self.keep_top, always)

    def _prune_weights(self) -> None:
        top = self.store.top(self.keep_top)
        self.rundir.prune_weights({t.id for t in top} | self._protected())

    # -- the result ----------------------------------------------------------------------------
    def finalize(self) -> dict[str, Any] | None:
        """Keep (or retrain) the best model, save it as final.pt and score it once on the test split.
        With final_ensemble N the returned model averages the N best trials' networks; with final_seeds K
        each of them is retrained K times (seeds trial seed, +1, ...) and all N x K are averaged."""
        # Highest reward first, the earlier trial on a tie: the head is `self.best`.
        ranked = sorted(self.store.trials("complete"), key=lambda t: (-t.reward, t.id))
        retrained: dict[int, torch.nn.Module] = {}
        if self.final_candidates > 1 and ranked:
            ranked, retrained = self._pick_by_retraining(_distinct(ranked, self.final_candidates))
        best_trials = ranked[: self.final_ensemble]
        if not best_trials:
            return None
        best = best_trials[0]
        # (trial, seed offset) per member network: a trial appears once per seed it is retrained with.
        members = [(record, k) for record in best_trials for k in range(self.final_seeds)]
        ids = [record.id for record, _ in members]
        final = self.final
        if (final is not None and final["trial"] == best.id and final.get("members", [best.id]) == ids
                and final.get("views") == self.test_views and (self.run_dir / final["weights"]).exists()):
            return final
        # (A recorded final model whose final.pt has gone is rebuilt here, as it was made: from the same
        # trials and seeds, so the same model.)
        with_validation = bool(self.final_epochs) and self.final_data == "train+val"
        models = []
        for record, offset in members:
            if offset == 0 and record.id in retrained and not with_validation:
                models.append(retrained[record.id])  # retrained exactly so while the candidates were picked
                continue
            genome = self.space.from_json(record.genome)
            torch.manual_seed(record.seed + offset)
            model = self.space.build(genome)
            if self.final_epochs:
                self.evaluator.retrain(model, record.seed + offset, self.final_epochs, genome, with_validation=with_validation)
            else:
                path = self.weights_path(record.id)
                if not path.exists():
                    raise RunDirError(f"cannot make the final model: the weights of trial {record.id} are missing from "
                                      f"{path.parent} (deleted?), and this study returns search weights rather than "
                                      f"retraining (no final_epochs); export a trial whose weights remain: "
                                      f"nasforge export {self.run_dir} --trial N --out FOLDER")
                model.load_state_dict(self.rundir.load_weights(path))
            models.append(model)
        if self.final_epochs:
            source = f"retrained for {self.final_epochs} epochs" + (" on training + validation" if with_validation else "")
        else:
            source = "weights of the search trial" + ("s" if len(models) > 1 else "")
        if self.final_seeds > 1:
            source += f", {self.final_seeds} times from seeds trial seed + 0..{self.final_seeds - 1}"
        if len(models) > 1:
            trials = ", ".join(str(record.id) for record in best_trials)
            source = f"ensemble of trial{'s' if len(best_trials) > 1 else ''} {trials} (mean probabilities), " + source
        if retrained:
            source += f"; picked by validation among the best {len(retrained)} trials, each retrained for {self.final_epochs} epochs"
        if self.test_views is not None:
            source += f", predictions averaged over test-time views of each input {self.test_views}"
        model = combine(models, make_views(self.test_views), self._task())
        model.eval()
        path = self.rundir.save_final(model.state_dict())
        final = {
            "trial": best.id,
            **({"members": ids} if len(ids) > 1 else {}),
            **({"views": self.test_views} if self.test_views is not None else {}),
            "weights": path.name,
            "source": source,
            # After a train+val retrain the validation score is no longer held out: kept, and flagged.
            "val": self.evaluator.validate(model),
            "val_in_training": with_validation,
            "test": self.evaluator.test(model),
            **({"candidates": self.store.get("final_candidates")} if retrained else {}),
        }
        self.store.set("final", final)
        return final

    def _pick_by_retraining(self, candidates: list[TrialRecord]) -> tuple[list[TrialRecord], dict[int, torch.nn.Module]]:
        """The candidates retrained from scratch for final_epochs on the training split, best first by
        validation reward, with the retrained networks. Each retrain is kept (weights/retrained_*.pt and
        the store's `final_candidates`) as it finishes, so a killed finalize does not repeat it."""
        done: dict[str, dict[str, Any]] = self.store.get("final_candidates") or {}
        models: dict[int, torch.nn.Module] = {}
        for record in candidates:
            genome = self.space.from_json(record.genome)
            path = self.rundir.retrained_path(record.id)
            torch.manual_seed(record.seed)
            model = self.space.build(genome)
            if str(record.id) in done and path.exists():
                model.load_state_dict(self.rundir.load_weights(path))
            else:
                self.evaluator.retrain(model, record.seed, self.final_epochs, genome)
                metrics = self.evaluator.validate(model)
                done[str(record.id)] = {"search_reward": record.reward, "reward": self.evaluator.reward_of(metrics),
                                        "accuracy": metrics.get("accuracy")}
                self.rundir.save_retrained(record.id, model.state_dict())
                self.store.set("final_candidates", done)
            models[record.id] = model.eval()
        order = sorted(candidates, key=lambda t: (-done[str(t.id)]["reward"], t.id))
        return order, models


def _distinct(ranked: list[TrialRecord], k: int) -> list[TrialRecord]:
    """The first k trials of `ranked` whose scores differ: two trials with the same reward and the same
    validation loss compute the same function (one-shot: cells that differ only on edges no path to the
    output uses), and retraining both would spend a retrain on one network twice."""
    seen, out = set(), []
    for record in ranked:
        score = (record.reward, record.metrics.get("loss"))
        if score in seen and score[1] is not None:
            continue
        seen.add(score)
        out.append(record)
        if len(out) == k:
            break
    return out
