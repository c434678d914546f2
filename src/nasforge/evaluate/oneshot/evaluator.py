"""One-shot evaluation: every candidate is scored as a path of one trained supernet.

`prepare` (called by the study before its first trial) trains the space's supernet with SPOS or fair
path sampling, or resumes that training from the checkpoint in the run directory; every `evaluate`
then scores a genome with the shared weights (scoring.py) and returns the path's weights as the
trial's, so the store, reports and export treat it like any trial. The search's result is trained
from scratch: the study retrains the best `final_candidates` paths for `final_epochs` and returns
the best by validation, or by the mean over `cv_folds` folds (final.py), as SPOS and ENAS retrain
the architecture they found.

Any strategy asks for the candidates: evolution over the trained supernet is SPOS's search, random
search is the NB201 paper's RSPS, REINFORCE is ENAS's controller (with shared-weight training
interleaved, enas.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ...data.dataset import Dataset
from ...errors import ConfigError
from ...space.base import Genome, SearchSpace
from ...space.supernet.base import Supernet
from ..evaluator import CANDIDATE_ERRORS, Evaluator, Result, Warmstart, failed
from ..trainer import TrainingOptions, resolve_device
from ..training import TrainingEvaluator
from .sampling import PathSampler
from .scoring import PathScorer, ScoringOptions
from .training import SupernetOptions, SupernetState, train_supernet

CHECKPOINT = Path("supernet") / "checkpoint.pt"


def make_supernet(space: SearchSpace) -> Supernet:
    try:
        net = space.supernet()
    except NotImplementedError as exc:
        raise ConfigError(f"evaluation one-shot: {exc}") from None
    if not isinstance(net, Supernet):
        raise ConfigError(f"evaluation one-shot: the {space.name!r} space's supernet() returned {type(net).__name__}, "
                          "not a Supernet")
    return net


class OneShotEvaluator(Evaluator):
    inherits_weights = False
    # The shared weights live in this process: trials cannot go to worker processes.
    serial_only = True

    def __init__(self, space: SearchSpace, data: Dataset, training: TrainingOptions, supernet: SupernetOptions,
                 scoring: ScoringOptions, reward: str = "accuracy", seed: int = 0,
                 folds: Sequence[tuple[torch.Tensor, torch.Tensor]] = ()):
        # Retraining, validation and the test score of the returned network are a normal evaluator's;
        # with `folds` (training.cv_folds) the retrained top paths are also ranked by the mean over them.
        self.standalone = TrainingEvaluator(space, data, training, reward, costs=None, folds=folds)
        self.space, self.data, self.training, self.reward, self.seed = space, data, training, reward, seed
        self.supernet_options, self.scoring_options = supernet, scoring
        make_supernet(space)  # a space without one is a ConfigError now, not after the run directory exists
        self.sampler = PathSampler(space, supernet.sampling)
        # The supernet trains and scores where the retrains do (training.device); it runs in float32
        # whatever training.precision says (autocast is the trainer's, not wired into SPOS steps).
        self.device = resolve_device(training.device)
        self.net: Supernet | None = None
        self.scorer: PathScorer | None = None
        self.state: SupernetState | None = None

    @property
    def reward_name(self) -> str:
        return self.standalone.reward_name  # "auto" resolved for the task

    @property
    def supernet(self) -> Supernet:
        """The trained supernet (trained, resumed or loaded on first use)."""
        self.prepare()
        if self.net is None:  # prepare() sets it or raises
            raise RuntimeError("the supernet was not prepared")
        return self.net

    @property
    def path_scorer(self) -> PathScorer:
        self.prepare()
        if self.scorer is None:
            raise RuntimeError("the supernet was not prepared")
        return self.scorer

    # -- the supernet --------------------------------------------------------------------------
    def signature(self) -> dict[str, Any]:
        """What a checkpoint must have been trained on to be resumed here."""
        d = self.data
        return {"space": self.space.name, "space_config": self.space.config(), "data": d.name,
                "train": [len(d.y_train), *map(int, d.x_train.shape[1:])],
                "train_checksum": round(float(d.x_train[:256].double().sum()), 6)}

    def prepare(self, run_dir: str | Path | None = None, log: Callable[[str], None] | None = None) -> None:
        """Train the supernet (or resume its training from `run_dir`'s checkpoint, or load it finished)."""
        if self.net is not None:
            return
        torch.manual_seed(self.seed)
        net = make_supernet(self.space).to(self.device)
        checkpoint = Path(run_dir) / CHECKPOINT if run_dir is not None else None
        self.state = train_supernet(net, self.sampler, self.data.x_train, self.data.y_train, self.supernet_options, self.seed,
                                    checkpoint, self.signature(), augment=self.data.augment, log=log)
        self.scorer = PathScorer(net, self.data.x_train, self.data.x_val, self.data.y_val, self.data.num_classes,
                                 self.scoring_options, self.seed)
        self.net = net

    # -- the contract --------------------------------------------------------------------------
    def evaluate(self, genome: Genome, seed: int, epochs: int | None = None, warmstart: Warmstart | None = None,
                 prune_below: dict[int, float] | None = None) -> Result:
        """The genome's path scored with the shared weights; `seed`, `epochs`, `warmstart` and
        `prune_below` concern training and do not apply."""
        self.prepare()
        start = time.perf_counter()
        try:
            metrics = self.score(genome)
            params = self.supernet.parameters_of(genome)
            state = self.supernet.path_state_dict(genome)
        except CANDIDATE_ERRORS as exc:
            return failed(exc, None, start)
        metrics["params"] = params
        return Result("complete", reward=self.reward_of(metrics), metrics=metrics, params=params,
                      train_seconds=time.perf_counter() - start, state_dict=state)

    def score(self, genome: Genome) -> dict[str, Any]:
        return self.path_scorer.score(genome)

    def reward_of(self, metrics: dict[str, Any]) -> float:
        return self.standalone.reward_of(metrics)

    def retrain(self, model: torch.nn.Module, seed: int, epochs: int, genome: Genome | None = None,
                with_validation: bool = False) -> None:
        self.standalone.retrain(model, seed, epochs, genome, with_validation=with_validation)

    def fold_scores(self, genome: Genome, seed: int, epochs: int, done: Sequence[dict[str, Any]] = (),
                    on_fold: Callable[[list[dict[str, Any]]], None] | None = None) -> list[dict[str, Any]]:
        return self.standalone.fold_scores(genome, seed, epochs, done, on_fold)

    def validate(self, model: torch.nn.Module) -> dict[str, Any]:
        return self.standalone.validate(model)

    def test(self, model: torch.nn.Module) -> dict[str, Any]:
        return self.standalone.test(model)
