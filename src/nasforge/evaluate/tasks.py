"""What the trainer needs to know about the task: which loss trains it, what a network's outputs
mean, how a split is scored and which rewards apply (data/tasks.py reads the targets).

Regression networks learn standardised targets (each target less its training-split mean, over its
standard deviation): a loss on the targets' own scale (the diabetes score runs from 25 to 346)
would spend the first epochs learning the bias. Predictions are mapped back before scoring, so
RMSE, MAE and R² are in the targets' units; the exported network outputs standardised targets
(the export's genome.json records the mean and std under dataset.target_normalization).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..data.tasks import TASKS
from .losses import DEFAULT_LOSS, LOSSES, LossFn, UserLoss, named_loss
from .metrics import DEFAULT_REWARD, REWARDS, CustomMetric, Reward, classification_metrics, multilabel_metrics, regression_metrics


@dataclass(frozen=True)
class Task:
    kind: str = "classification"
    outputs: int = 2
    target_mean: tuple[float, ...] = ()
    target_std: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in TASKS:
            raise ValueError(f"unknown task {self.kind!r}; choose from {', '.join(TASKS)}")

    @classmethod
    def of(cls, data: Any) -> Task:
        """The task of a Dataset or StreamedDataset (text datasets are classification)."""
        return cls(getattr(data, "task", "classification"), int(data.num_classes),
                   tuple(getattr(data, "target_mean", ()) or ()), tuple(getattr(data, "target_std", ()) or ()))

    # -- rewards and losses, checked when a study is built -------------------------------------------
    def reward(self, name: str | CustomMetric) -> Reward:
        """The reward `name` ("auto": the task's default) or the user's metric; ValueError where it does
        not apply to this task (accuracy of a regression)."""
        if isinstance(name, CustomMetric):
            return name.reward
        name = DEFAULT_REWARD[self.kind] if name == "auto" else name
        if name not in REWARDS:
            raise ValueError(f"unknown reward {name!r}; choose from auto, {', '.join(REWARDS)}")
        reward = REWARDS[name]
        if self.kind not in reward.tasks:
            fits = [r for r, spec in REWARDS.items() if self.kind in spec.tasks]
            raise ValueError(f"reward {name!r} does not apply to {self.kind}; choose from {', '.join(fits)}")
        return reward

    def loss(self, spec: str | Callable[..., torch.Tensor] = "auto", label_smoothing: float = 0.0) -> LossFn:
        """The training loss, taking (outputs, targets as stored): regression targets are standardised
        here, before a named loss or the user's sees them."""
        if callable(spec):
            fn: LossFn = UserLoss(spec)
        else:
            name = DEFAULT_LOSS[self.kind] if spec == "auto" else spec
            if name not in LOSSES:
                raise ValueError(f"unknown loss {name!r}; choose from auto, {', '.join(LOSSES)} or pass a callable")
            if self.kind not in LOSSES[name]:
                fits = [n for n, tasks in LOSSES.items() if self.kind in tasks]
                raise ValueError(f"loss {name!r} does not train {self.kind}; choose from {', '.join(fits)} or pass a callable")
            if label_smoothing and name != "cross_entropy":
                raise ValueError(f"label_smoothing: applies to cross_entropy (classification), not to {name}")
            fn = named_loss(name, label_smoothing)
        if self.kind != "regression":
            return fn
        mean, std = self._target_scale()

        def standardised(outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return fn(outputs, (y - mean.to(y.device)) / std.to(y.device))

        return standardised

    def _target_scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        mean = torch.tensor(self.target_mean or (0.0,) * self.outputs, dtype=torch.float32)
        std = torch.tensor(self.target_std or (1.0,) * self.outputs, dtype=torch.float32)
        return mean, std

    # -- outputs and scores --------------------------------------------------------------------------
    def scores(self, outputs: np.ndarray) -> np.ndarray:
        """Class probabilities (classification), label probabilities (multi-label) or predictions in
        the targets' units (regression) of a batch of network outputs."""
        if self.kind == "classification":
            z = outputs - outputs.max(axis=1, keepdims=True)
            e = np.exp(z)
            return e / e.sum(axis=1, keepdims=True)
        if self.kind == "multilabel":
            return 1.0 / (1.0 + np.exp(-outputs))
        mean, std = (t.numpy() for t in self._target_scale())
        return outputs.reshape(len(outputs), -1) * std + mean

    def metrics(self, y_true: np.ndarray, outputs: np.ndarray, loss: float, reward: Reward | None = None,
                metric: CustomMetric | None = None) -> dict[str, Any]:
        """Every metric of the task on one split; AUC / average precision only when the reward needs them;
        the user's metric under its own name."""
        ranking = reward is not None and reward.scores
        probabilities = self.scores(outputs)
        if self.kind == "classification":
            out = classification_metrics(y_true, outputs.argmax(axis=1), self.outputs, loss, probabilities if ranking else None)
        elif self.kind == "multilabel":
            out = multilabel_metrics(y_true, probabilities, loss, scores=ranking)
        else:
            out = regression_metrics(y_true, probabilities, loss)
        if metric is not None:
            if self.kind == "regression" and self.outputs == 1:
                y_true = y_true.reshape(-1)
            out[metric.name] = metric(y_true, self.user_scores(y_true, probabilities))
        return out

    def user_scores(self, y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """y_score as a custom metric receives it (scikit-learn's conventions, see CustomMetric)."""
        if self.kind == "classification" and self.outputs == 2:
            return scores[:, 1]
        if self.kind == "regression":
            return scores.reshape(y_true.shape)
        return scores
