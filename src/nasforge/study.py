"""The search loop: ask the strategy, evaluate through an executor, tell the result, record it all.

Stops at a trial budget, a wall-clock budget or a target reward, whichever comes first. A genome
already evaluated is never trained again: the strategy is told the stored result instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .evaluate.evaluator import Result, TrainingEvaluator
from .evaluate.trainer import train
from .execute.base import Executor, SerialExecutor
from .report.progress import Progress
from .space.base import SearchSpace
from .store import Store, TrialRecord
from .strategy.base import Candidate, Strategy

# Consecutive already-seen genomes after which the space is taken as exhausted.
MAX_DUPLICATES = 500


@dataclass(frozen=True)
class Budget:
    trials: int | None = None
    seconds: float | None = None
    target: float | None = None


def trial_seed(study_seed: int, trial_id: int) -> int:
    return (study_seed * 1_000_003 + trial_id) % (2**31)


class Study:
    def __init__(
        self,
        space: SearchSpace,
        strategy: Strategy,
        evaluator: TrainingEvaluator,
        store: Store,
        run_dir: str | Path,
        budget: Budget,
        seed: int = 0,
        keep_top: int = 5,
        final_epochs: int | None = None,
        executor: Executor | None = None,
        progress: bool = True,
        callbacks: tuple[Callable[[Study, TrialRecord], None], ...] = (),
    ):
        self.space, self.strategy, self.evaluator, self.store = space, strategy, evaluator, store
        self.run_dir = Path(run_dir)
        self.budget, self.seed, self.keep_top, self.final_epochs = budget, seed, keep_top, final_epochs
        self.executor = executor or SerialExecutor(evaluator)
        self.show_progress = progress
        self.callbacks = callbacks
        self.stop_reason: str | None = None

    # -- results -------------------------------------------------------------------------------
    @property
    def trials(self) -> list[TrialRecord]:
        return self.store.trials()

    @property
    def best(self) -> TrialRecord | None:
        complete = self.store.trials("complete")
        return max(complete, key=lambda t: (t.reward, -t.id)) if complete else None

    @property
    def final(self) -> dict[str, Any] | None:
        """The returned model: its trial, test metrics and weights file (after the search ends)."""
        return self.store.get("final")

    def best_model(self) -> torch.nn.Module:
        from .export import load_weights

        final = self.final
        if final is None:
            raise RuntimeError("the study has not finished; run() it first")
        model = self.space.build(self.space.from_json(self.store.trial(final["trial"]).genome))
        model.load_state_dict(load_weights(self.run_dir / final["weights"]))
        return model.eval()

    def weights_path(self, trial_id: int) -> Path:
        return self.run_dir / "weights" / f"trial_{trial_id:05d}.pt"

    # -- the loop ------------------------------------------------------------------------------
    def _elapsed(self) -> float:
        return self._elapsed_before + time.monotonic() - self._session_start

    def _best_reward(self) -> float | None:
        best = self.best
        return best.reward if best else None

    def _should_stop(self) -> str | None:
        b = self.budget
        if b.target is not None and (r := self._best_reward()) is not None and r >= b.target:
            return "target"
        if b.seconds is not None and self._elapsed() >= b.seconds:
            return "seconds"
        if b.trials is not None and self.store.count() >= b.trials:
            return "trials"
        return None

    def run(self) -> Study:
        self._session_start = time.monotonic()
        self._elapsed_before = float(self.store.get("elapsed_seconds", 0.0))
        state = self.store.strategy_state()
        if state is not None:
            self.strategy.load_state_dict(state)
        finished = len(self.store.trials()) - len(self.store.trials("running"))
        progress = Progress(self.budget, finished, self._best_reward(), enabled=self.show_progress)
        in_flight: dict[int, Candidate] = {}
        in_flight_keys: dict[str, int] = {}
        waiting: dict[int, list[Candidate]] = {}  # duplicates of an in-flight genome, told with it
        try:
            # Trials that were running when a previous process died: the strategy already asked
            # for them (its stored state says so), so evaluate them again under the same id.
            for rec in self.store.trials("running"):
                cand = Candidate(self.space.from_json(rec.genome), tuple(rec.parents), rec.operator)
                self.store.restart_trial(rec.id)
                self._submit(rec.id, cand, rec.seed, in_flight, in_flight_keys, progress)
            duplicates = 0
            while True:
                self.stop_reason = self._should_stop()
                while self.stop_reason is None and len(in_flight) < self.executor.capacity:
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
                            self.strategy.tell(seen.id, cand, seen.reward if seen.status == "complete" else None)
                            self.store.save_state(self.strategy.state_dict(), self._elapsed())
                        else:
                            waiting.setdefault(in_flight_keys[key], []).append(cand)
                        continue
                    duplicates = 0
                    seed = trial_seed(self.seed, self.store.count() + 1)
                    trial_id = self.store.add_trial(
                        self.space.to_json(cand.genome), key, list(cand.parents), cand.operator, seed, self.strategy.state_dict()
                    )
                    self._submit(trial_id, cand, seed, in_flight, in_flight_keys, progress)
                if not in_flight:
                    if self.stop_reason is None:
                        self.stop_reason = "strategy has nothing more to ask"
                    break
                trial_id, result = self.executor.next_result()
                cand = in_flight.pop(trial_id)
                in_flight_keys.pop(self.space.key(cand.genome), None)
                record = self._finish(trial_id, cand, result, waiting.pop(trial_id, []))
                progress.trial_done(record, self._best_reward(), self._elapsed())
                for callback in self.callbacks:
                    callback(self, record)
        except KeyboardInterrupt:
            self.stop_reason = "interrupted"
            progress.close()
            raise
        progress.close()
        self.finalize()
        return self

    def _submit(self, trial_id: int, cand: Candidate, seed: int, in_flight: dict, in_flight_keys: dict, progress: Progress) -> None:
        in_flight[trial_id] = cand
        in_flight_keys[self.space.key(cand.genome)] = trial_id
        progress.started(trial_id, self.space.describe(cand.genome))
        self.executor.submit(trial_id, cand.genome, seed)

    def _finish(self, trial_id: int, cand: Candidate, result: Result, duplicates: list[Candidate]) -> TrialRecord:
        reward = result.reward if result.status == "complete" else None
        if result.state_dict is not None:
            self._keep_weights(trial_id, result)
        self.strategy.tell(trial_id, cand, reward)
        for dup in duplicates:
            self.strategy.tell(trial_id, dup, reward)
        self.store.finish_trial(
            trial_id, result.status, reward, result.metrics, result.params, result.train_seconds, result.curve,
            result.error, self.strategy.state_dict(), self._elapsed(),
        )
        self._prune_weights()
        return self.store.trial(trial_id)

    def _keep_weights(self, trial_id: int, result: Result) -> None:
        complete = sorted((t.reward for t in self.store.trials("complete")), reverse=True)
        if len(complete) >= self.keep_top and result.reward <= complete[self.keep_top - 1]:
            return
        path = self.weights_path(trial_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(result.state_dict, tmp)
        tmp.replace(path)

    def _prune_weights(self) -> None:
        top = sorted(self.store.trials("complete"), key=lambda t: (-t.reward, t.id))[: self.keep_top]
        keep = {self.weights_path(t.id).name for t in top}
        folder = self.run_dir / "weights"
        if folder.exists():
            for path in folder.glob("trial_*.pt"):
                if path.name not in keep:
                    path.unlink(missing_ok=True)

    # -- the result ----------------------------------------------------------------------------
    def finalize(self) -> dict[str, Any] | None:
        """Keep (or retrain) the best model, save it as final.pt and score it once on the test split."""
        best = self.best
        if best is None:
            return None
        final = self.final
        if final is not None and final["trial"] == best.id:
            return final
        genome = self.space.from_json(best.genome)
        model = self.space.build(genome)
        if self.final_epochs:
            data = self.evaluator.data
            train(model, data.x_train, data.y_train, self.evaluator.training, best.seed, epochs=self.final_epochs)
            source = f"retrained for {self.final_epochs} epochs"
        else:
            from .export import load_weights

            model.load_state_dict(load_weights(self.weights_path(best.id)))
            source = "weights of the search trial"
        model.eval()
        path = self.run_dir / "final.pt"
        torch.save(model.state_dict(), path)
        from .evaluate.trainer import score

        data = self.evaluator.data
        final = {
            "trial": best.id,
            "weights": path.name,
            "source": source,
            "val": score(model, data.x_val, data.y_val, data.num_classes),
            "test": self.evaluator.test(model),
        }
        self.store.set("final", final)
        return final
