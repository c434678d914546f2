"""The model a study returns: made from its best trials once the search ends, saved as final.pt,
scored once on the test split, and rebuilt from the store and final.pt whenever it is asked for.

The study (study.py) runs the loop; `FinalModel` is what it calls at the end (`Study.finalize`)
and what `Study.best_model` loads. Options (`FinalOptions`): the trial's own weights or a retrain
from scratch (`epochs`, on the training split or training + validation), an ensemble of the best N
trials, each retrained from K seeds, and test-time views averaged over.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .data.datasets import make_views
from .ensemble import combine
from .errors import RunDirError
from .evaluate.crossval import summarize
from .evaluate.evaluator import Evaluator
from .rundir import RunDir
from .space.base import SearchSpace
from .store import Store, TrialRecord


@dataclass(frozen=True)
class FinalOptions:
    """How the returned model is made from the search's best trials.

    `epochs`: retrain each returned network from scratch for this many epochs (None: keep the search
    trial's own weights); `data`: "train", or "train+val" for a retrain that also learns from the
    validation split; `ensemble`: average the best N trials' networks; `seeds`: retrain each of them
    from K seeds (trial seed + 0..K-1) and average all; `candidates`: retrain the best N trials by the
    search's reward from scratch and return the best by validation (for rewards that rank only
    roughly: one-shot scores from a supernet); `test_views`: the spec of the test-time views the
    returned model averages over (data.datasets.make_views), None for none."""

    epochs: int | None = None
    data: str = "train"
    ensemble: int = 1
    seeds: int = 1
    candidates: int = 1
    test_views: dict[str, Any] | None = None

    def check(self, evaluator: Evaluator, objectives: Sequence[str] = ()) -> None:
        """ValueError for options that cannot make a model with this evaluator and these objectives."""
        if self.data not in ("train", "train+val"):
            raise ValueError(f"final_data must be 'train' or 'train+val', got {self.data!r}")
        for name, count in (("final_ensemble", self.ensemble), ("final_seeds", self.seeds)):
            if count < 1:
                raise ValueError(f"{name} must be >= 1, got {count}")
            if count > 1 and len(objectives) >= 2:
                raise ValueError(f"{name}: a search with several objectives returns its Pareto front, not one model")
        if self.seeds > 1 and not self.epochs:
            raise ValueError("final_seeds: retrains from several seeds need final_epochs (a trial's weights exist once)")
        if self.candidates < 1 or (self.candidates > 1 and (not self.epochs or len(objectives) >= 2)):
            raise ValueError(f"final_candidates ({self.candidates}): the best N trials are retrained from scratch and the best "
                             "by validation returned; N >= 1, and N > 1 needs final_epochs and a single objective")
        if self.epochs and not evaluator.can_retrain:
            raise ValueError(f"final_epochs: {type(evaluator).__name__} cannot retrain a network (it implements no retrain); "
                             "drop final_epochs to return the search trial's own weights")


class FinalModel:
    """Makes the returned model of a finished search (`make`) and loads it again (`load`)."""

    def __init__(self, options: FinalOptions, space: SearchSpace, evaluator: Evaluator, store: Store, rundir: RunDir):
        self.options, self.space, self.evaluator, self.store, self.rundir = options, space, evaluator, store, rundir

    @property
    def record(self) -> dict[str, Any] | None:
        """What the store holds of the returned model: its trial, test metrics and weights file."""
        return self.store.get("final")

    def load(self) -> torch.nn.Module:
        """The returned model (an Ensemble of several trials' networks when ensemble > 1), in eval mode."""
        final = self.record
        if final is None:
            raise RuntimeError("the study has not finished; run() it first")
        model = self._combine([self._build(self.store.require_trial(i)) for i in final.get("members", [final["trial"]])],
                              final.get("views"))
        model.load_state_dict(self.rundir.load_weights(self.rundir.path / final["weights"]))  # final.pt
        return model.eval()

    def make(self) -> dict[str, Any] | None:
        """Keep (or retrain) the best model, save it as final.pt and score it once on the test split.
        With ensemble N the returned model averages the N best trials' networks; with seeds K each of
        them is retrained K times (seeds trial seed, +1, ...) and all N x K are averaged; with
        candidates N the best N trials are first retrained and ranked by validation. A returned
        model already made of the same trials, seeds and views is kept as it is."""
        o = self.options
        # Highest reward first, the earlier trial on a tie: the head is the study's best.
        ranked = sorted(self.store.trials("complete"), key=_best_first)
        retrained: dict[int, torch.nn.Module] = {}
        if o.candidates > 1 and ranked:
            ranked, retrained = self._pick_by_retraining(_distinct(ranked, o.candidates))
        best_trials = ranked[: o.ensemble]
        if not best_trials:
            return None
        best = best_trials[0]
        # (trial, seed offset) per member network: a trial appears once per seed it is retrained with.
        members = [(record, k) for record in best_trials for k in range(o.seeds)]
        ids = [record.id for record, _ in members]
        final = self.record
        if (final is not None and final["trial"] == best.id and final.get("members", [best.id]) == ids
                and final.get("views") == o.test_views and (self.rundir.path / final["weights"]).exists()):
            return final
        # (A recorded final model whose final.pt has gone is rebuilt here, as it was made: from the same
        # trials and seeds, so the same model.)
        with_validation = bool(o.epochs) and o.data == "train+val"
        # A candidate retrained while the candidates were picked is exactly that network (train split, seed + 0).
        models = [retrained[record.id] if offset == 0 and record.id in retrained and not with_validation
                  else self._member(record, offset, with_validation) for record, offset in members]
        model = self._combine(models, o.test_views)
        model.eval()
        path = self.rundir.save_final(model.state_dict())
        final = {
            "trial": best.id,
            **({"members": ids} if len(ids) > 1 else {}),
            **({"views": o.test_views} if o.test_views is not None else {}),
            "weights": path.name,
            "source": self._source(best_trials, len(models), with_validation, len(retrained)),
            # After a train+val retrain the validation score is no longer held out: kept, and flagged.
            "val": self.evaluator.validate(model),
            "val_in_training": with_validation,
            "test": self.evaluator.test(model),
            **({"candidates": self.store.get("final_candidates")} if retrained else {}),
        }
        self.store.set("final", final)
        return final

    def _member(self, record: TrialRecord, offset: int, with_validation: bool) -> torch.nn.Module:
        """One returned network: trial `record` retrained from seed + `offset`, or its kept weights."""
        genome = self.space.from_json(record.genome)
        torch.manual_seed(record.seed + offset)
        model = self.space.build(genome)
        if self.options.epochs:
            self.evaluator.retrain(model, record.seed + offset, self.options.epochs, genome, with_validation=with_validation)
            return model
        path = self.rundir.weights_path(record.id)
        if not path.exists():
            raise RunDirError(f"cannot make the final model: the weights of trial {record.id} are missing from "
                              f"{path.parent} (deleted?), and this study returns search weights rather than "
                              f"retraining (no final_epochs); export a trial whose weights remain: "
                              f"nasforge export {self.rundir.path} --trial N --out FOLDER")
        model.load_state_dict(self.rundir.load_weights(path))
        return model

    def _source(self, best_trials: list[TrialRecord], networks: int, with_validation: bool, picked: int = 0) -> str:
        """How the returned model was made, in words (the store's final.source, shown by `nasforge show`)."""
        o = self.options
        if o.epochs:
            source = f"retrained for {o.epochs} epochs" + (" on training + validation" if with_validation else "")
        else:
            source = "weights of the search trial" + ("s" if networks > 1 else "")
        if o.seeds > 1:
            source += f", {o.seeds} times from seeds trial seed + 0..{o.seeds - 1}"
        if networks > 1:
            trials = ", ".join(str(record.id) for record in best_trials)
            source = f"ensemble of trial{'s' if len(best_trials) > 1 else ''} {trials} (mean probabilities), " + source
        if picked:
            folded = any("cv_accuracy" in c for c in (self.store.get("final_candidates") or {}).values())
            by = "the mean over cross-validation folds" if folded else "validation"
            source += f"; picked by {by} among the best {picked} trials, each retrained for {o.epochs} epochs"
        if o.test_views is not None:
            source += f", predictions averaged over test-time views of each input {o.test_views}"
        return source

    def _pick_by_retraining(self, candidates: list[TrialRecord]) -> tuple[list[TrialRecord], dict[int, torch.nn.Module]]:
        """The candidates retrained from scratch for `epochs` on the training split, best first by
        validation reward (with cross-validation folds: by the mean over them), with the retrained
        networks. Each candidate's retrain is kept (weights/retrained_*.pt and the store's
        `final_candidates`) once it and its folds finish, and each fold's score as it finishes
        (`final_folds`), so a killed finalize repeats no retrain that had finished."""
        epochs = self.options.epochs
        if not epochs:  # FinalOptions.check refuses this; the retrains need a length
            raise ValueError("final_candidates: picking among retrained candidates needs final_epochs")
        done: dict[str, dict[str, Any]] = self.store.get("final_candidates") or {}
        # A candidate between its folds: its retrain's validation scores and the folds finished so far.
        # It moves to `done` when its last fold finishes: each candidate is in one of the two.
        progress: dict[str, dict[str, Any]] = self.store.get("final_folds") or {}
        models: dict[int, torch.nn.Module] = {}
        for record in candidates:
            key, genome = str(record.id), self.space.from_json(record.genome)
            path = self.rundir.retrained_path(record.id)
            torch.manual_seed(record.seed)
            model = self.space.build(genome)
            if path.exists() and (key in done or key in progress):
                model.load_state_dict(self.rundir.load_weights(path))  # its retrain had finished
            else:  # seeded, so a retrain after lost weights is the same network and its kept scores hold
                self.evaluator.retrain(model, record.seed, epochs, genome)
                self.rundir.save_retrained(record.id, model.state_dict())
                if key not in done and key not in progress:
                    progress[key] = {"retrain": self.evaluator.validate(model), "folds": []}
                    self.store.set("final_folds", progress)
            if key not in done:
                entry = progress[key]

                def keep(scores: list[dict[str, Any]], entry: dict[str, Any] = entry) -> None:
                    entry["folds"] = scores
                    self.store.set("final_folds", progress)

                # With cross-validation folds the candidate is ranked by its mean over them (fold 1 is
                # this retrain): one small validation group, e.g. one speaker, ranks only roughly.
                folds = self.evaluator.fold_scores(genome, record.seed, epochs, done=entry["folds"], on_fold=keep)
                metrics = summarize([entry["retrain"], *folds]) if folds else entry["retrain"]
                done[key] = {"search_reward": record.reward, "reward": self.evaluator.reward_of(metrics),
                             "accuracy": metrics.get("accuracy"),
                             **({"cv_accuracy": metrics["cv_accuracy"]} if "cv_accuracy" in metrics else {})}
                self.store.set("final_candidates", done)
                del progress[key]
                self.store.set("final_folds", progress)
            models[record.id] = model.eval()
        order = sorted(candidates, key=lambda t: (-done[str(t.id)]["reward"], t.id))
        return order, models

    def _build(self, record: TrialRecord) -> torch.nn.Module:
        return self.space.build(self.space.from_json(record.genome))

    def _combine(self, models: list[torch.nn.Module], views: dict[str, Any] | None) -> torch.nn.Module:
        # classification, multilabel or regression: how an ensemble of the returned networks averages.
        task = (self.store.get("dataset") or {}).get("task", "classification")
        return combine(models, make_views(views), task)


def _best_first(record: TrialRecord) -> tuple[float, int]:
    """Highest reward first, the earlier trial on a tie (a complete trial always has a reward)."""
    return (-record.reward if record.reward is not None else math.inf, record.id)


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
