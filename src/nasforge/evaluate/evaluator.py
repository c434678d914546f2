"""Evaluators turn a genome into a Result. The study never trains; the evaluator never chooses."""

from __future__ import annotations

import time
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import torch

from ..data.datasets import Dataset
from ..errors import InvalidGenome, TrialFailure
from ..space.base import Genome, SearchSpace
from .metrics import REWARDS
from .trainer import TrainingOptions, score, train


@dataclass
class Result:
    status: str  # "complete" | "failed"
    reward: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    params: int | None = None
    train_seconds: float = 0.0
    curve: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None
    # Trained weights; kept in memory only, the study decides what to persist.
    state_dict: dict[str, torch.Tensor] | None = field(default=None, repr=False)


class Evaluator(ABC):
    @abstractmethod
    def evaluate(self, genome: Genome, seed: int, epochs: int | None = None) -> Result:
        """Train and score one candidate. Never raises for a failing candidate: returns status 'failed'."""


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class TrainingEvaluator(Evaluator):
    """Builds the candidate, trains it on the training split, scores it on the validation split."""

    def __init__(self, space: SearchSpace, data: Dataset, training: TrainingOptions, reward: str = "accuracy"):
        if reward not in REWARDS:
            raise ValueError(f"unknown reward {reward!r}; choose from {sorted(REWARDS)}")
        self.space, self.data, self.training, self.reward = space, data, training, reward

    def evaluate(self, genome: Genome, seed: int, epochs: int | None = None) -> Result:
        start = time.perf_counter()
        params = None
        try:
            model = self.space.build(genome)
            params = count_params(model)
            outcome = train(
                model, self.data.x_train, self.data.y_train, self.training, seed,
                epochs=epochs, validation=(self.data.x_val, self.data.y_val),
            )
            metrics = score(model, self.data.x_val, self.data.y_val, self.data.num_classes)
        except (TrialFailure, InvalidGenome) as exc:
            return Result("failed", params=params, train_seconds=time.perf_counter() - start, error=str(exc))
        except MemoryError:
            return Result("failed", params=params, train_seconds=time.perf_counter() - start, error="out of memory")
        except (RuntimeError, ValueError) as exc:
            # Shape mismatches, CUDA OOM and other per-candidate errors from inside torch.
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            return Result("failed", params=params, train_seconds=time.perf_counter() - start, error=last[:2000])
        return Result(
            "complete",
            reward=float(REWARDS[self.reward](metrics)),
            metrics=metrics,
            params=params,
            train_seconds=outcome.seconds,
            curve=outcome.curve,
            state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
        )

    def test(self, model: torch.nn.Module) -> dict[str, Any]:
        """Score on the test split: called once, for the final model, never for selection."""
        return score(model, self.data.x_test, self.data.y_test, self.data.num_classes)
