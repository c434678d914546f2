"""The evaluator a config describes: its training options, reward, cost measures, constraints and
folds, for the data and space of the search (TrainingEvaluator, the user's FunctionalEvaluator, the
language-model evaluator, or one from the EVALUATORS registry)."""

from __future__ import annotations

from typing import Any

import torch

from ..config import SearchConfig
from ..data.dataset import Dataset
from ..data.streamed import StreamedDataset
from ..data.text import CharCorpus
from ..errors import ConfigError
from ..registry import EVALUATORS
from ..space.base import SearchSpace
from ..usercode import UserObjects
from .constraints import MnasNetReward, Scalarization, WeightedSum, parse_constraints
from .cost import CostOptions
from .crossval import extra_folds
from .evaluator import Evaluator
from .language_model import LanguageModelEvaluator
from .metrics import CustomMetric
from .trainer import TrainingOptions, auto_batch_size
from .training import TrainingEvaluator


def training_options(config: SearchConfig, data: Any, objects: UserObjects | None = None) -> TrainingOptions:
    """The training section as the trainer takes it: the automatic batch size resolved for the data,
    the user's own loss / optimizer callables in place of "custom"."""
    objects = objects or UserObjects()
    t = config.training
    rows = _training_rows(data)
    batch_size = t.batch_size if t.batch_size != "auto" else (auto_batch_size(rows) if rows else TrainingOptions.batch_size)
    return TrainingOptions(epochs=t.epochs, batch_size=batch_size, lr=t.lr, weight_decay=t.weight_decay,
                           cosine=t.cosine, time_limit=t.trial_timeout, cpu_seconds=t.cpu_seconds, device=t.device,
                           label_smoothing=t.label_smoothing, loss=objects.loss or t.loss,
                           optimizer=objects.optimizer or t.optimizer, momentum=t.momentum, nesterov=t.nesterov,
                           precision=t.precision, channels_last=t.channels_last, final_compile=t.final_compile,
                           memory_limit=t.max_memory_gb * 1e9 if t.max_memory_gb is not None else None)


def _training_rows(data: Any) -> int | None:
    """How many training samples the data has (for the automatic batch size), where it says."""
    if isinstance(data, Dataset):
        return len(data.y_train)
    train = getattr(data, "train", None)
    try:
        return len(train) if isinstance(data, StreamedDataset) and train is not None else None
    except TypeError:
        return None


def cost_options(config: SearchConfig) -> CostOptions:
    c = config.costs
    return CostOptions(batch_size=c.batch_size, warmup=c.warmup, repeats=c.repeats, device=c.device)


def make_scalarization(config: SearchConfig) -> Scalarization | None:
    s = config.scalarize
    if s.name == "mnasnet":
        if s.target is None:  # ScalarizeConfig refuses this already
            raise ConfigError("scalarize.target: the mnasnet reward needs a target for its measure")
        return MnasNetReward.of(s.measure, s.target, s.mode, s.alpha, s.beta)
    if s.name == "weighted":
        return WeightedSum.of(s.weights)
    return None


def make_evaluator(config: SearchConfig, space: SearchSpace, data: Dataset | StreamedDataset | CharCorpus, training: TrainingOptions,
                   objects: UserObjects | None = None, epoch_callbacks: tuple[Any, ...] = ()) -> Evaluator:
    objects = objects or UserObjects()
    if config.evaluation.name == "one-shot":
        return make_one_shot_evaluator(config, space, data, training, objects)
    name = "functional" if objects.evaluate is not None else config.evaluator
    if isinstance(data, CharCorpus):
        used = [f for f in ("objectives", "constraints") if getattr(config, f)] + (["scalarize"] if config.scalarize.name != "none" else [])
        if used:
            raise ConfigError(f"{', '.join(used)}: cost measures, constraints and scalarized rewards are not available for "
                              "language models yet")
        if training.label_smoothing:
            raise ConfigError("training.label_smoothing: language models train on plain next-character cross-entropy")
        if config.training.cv_folds is not None:
            raise ConfigError("training.cv_folds: language models are scored on their own validation text, not by folds")
        if name not in ("auto", "language_model"):
            raise ConfigError(f"evaluator: a character corpus trains language models; {name!r} does not")
        lm_reward = "neg_loss" if config.reward == "auto" else config.reward
        return LanguageModelEvaluator(space, data, training, lm_reward, seq_len=config.dataset.max_length or 128)
    if training.cpu_seconds is not None:
        raise ConfigError("training.cpu_seconds: only language models train to a CPU-time budget; classifiers train for "
                          "`epochs` (use trial_timeout to cap a candidate's time)")
    streamed = isinstance(data, StreamedDataset)
    if config.training.cv_folds and streamed:
        raise ConfigError("training.cv_folds: cross-validation folds index into data held in memory; this data is streamed "
                          "(set dataset.stream: false, or drop cv_folds)")
    # (Streamed data was refused above: folds index into a Dataset.)
    folds = cv_folds(config, data) if isinstance(data, Dataset) else []
    reward: str | CustomMetric = config.reward
    if config.reward == "custom":
        if objects.metric is None:
            raise ConfigError("reward: custom is the Python API's reward=callable(y_true, y_score); give it again")
        reward = CustomMetric(objects.metric, config.reward_direction)
    costs, constraints, scalarization = cost_options(config), parse_constraints(config.constraints), make_scalarization(config)
    try:
        if name == "functional":
            if objects.evaluate is None:
                raise ConfigError("evaluator: functional runs the Python API's evaluate=fn(model, ctx); give it again")
            if folds:
                raise ConfigError("training.cv_folds: folds need the built-in trainer; evaluate= trains one network its own way")
            from .functional import FunctionalEvaluator

            return FunctionalEvaluator(space, data, objects.evaluate, training, reward, config.reward_direction,
                                       proxies=config.training.proxies, costs=costs, constraints=constraints,
                                       scalarization=scalarization, epoch_callbacks=epoch_callbacks)
        if name in ("auto", "training"):
            return TrainingEvaluator(space, data, training, reward, proxies=config.training.proxies, costs=costs,
                                     constraints=constraints, scalarization=scalarization, folds=folds,
                                     epoch_callbacks=epoch_callbacks)
        factory = EVALUATORS.get_or_error(name, "evaluator")
        return factory(space=space, data=data, training=training, reward=reward)
    except ValueError as exc:  # a reward or loss that does not fit the task
        field = "training.loss" if "loss" in str(exc) else "reward"
        raise ConfigError(f"{field}: {exc}") from None


def make_one_shot_evaluator(config: SearchConfig, space: SearchSpace, data: Dataset | StreamedDataset | CharCorpus,
                            training: TrainingOptions, objects: UserObjects | None = None) -> Evaluator:
    """The supernet evaluator of `evaluation: one-shot` (evaluate/oneshot/); ENAS's when shared_steps > 0.
    The supernet trains with the training section's batch size, learning rate, weight decay and schedule."""
    from .oneshot import OneShotEvaluator, ScoringOptions, SupernetOptions
    from .oneshot.enas import EnasEvaluator

    if isinstance(data, CharCorpus):
        raise ConfigError("evaluation: one-shot evaluation scores classifiers; language models are trained on their own")
    if objects is not None and objects.evaluate is not None:
        raise ConfigError("evaluation: one-shot scores paths of a supernet with its own evaluator; evaluate=fn(model, ctx) "
                          "trains each candidate its own way (drop one of them)")
    if isinstance(data, StreamedDataset):
        raise ConfigError("evaluation: one-shot trains its supernet on data held in memory; this data is streamed "
                          "(set dataset.stream: false)")
    if getattr(data, "task", "classification") != "classification":
        raise ConfigError(f"evaluation: one-shot scores classifiers by their class predictions; this data is a "
                          f"{data.task} task (use evaluation train)")
    e = config.evaluation
    supernet = SupernetOptions(epochs=e.supernet_epochs, sampling=e.sampling, batch_size=training.batch_size, lr=training.lr,
                               weight_decay=training.weight_decay, cosine=training.cosine,
                               label_smoothing=training.label_smoothing)
    scoring = ScoringOptions(bn_batches=e.bn_batches, batch_size=training.batch_size)
    # Paths are scored on the validation split; folds rank the retrained top paths (final.py).
    folds = cv_folds(config, data)
    if e.shared_steps:
        return EnasEvaluator(space, data, training, supernet, scoring, config.reward, config.seed, folds=folds,
                             shared_steps=e.shared_steps, shared_every=e.shared_every)
    return OneShotEvaluator(space, data, training, supernet, scoring, config.reward, config.seed, folds=folds)


def cv_folds(config: SearchConfig, data: Dataset) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Folds 2..K of `training.cv_folds` (crossval.extra_folds); none when it is not set."""
    if not config.training.cv_folds:
        return []
    try:
        return extra_folds(data, config.training.cv_folds, config.dataset.split_seed)
    except ValueError as exc:
        raise ConfigError(f"training.cv_folds: {exc}") from None


def default_inherit(inherit: bool | None, evaluator: Evaluator) -> bool:
    """Weight inheritance unless the config says otherwise, wherever the evaluator supports it
    (measured on MNIST-1D: the same accuracy for 0.60x the CPU alone, +2.7 points with halving and
    the pre-screen; README "Cheaper evaluation"). Strategies that make no children (random search)
    are unaffected either way."""
    if inherit and not evaluator.inherits_weights:
        raise ConfigError(f"training.inherit: {type(evaluator).__name__} cannot map a parent's weights onto a child; "
                          "set inherit: false")
    return evaluator.inherits_weights if inherit is None else inherit
