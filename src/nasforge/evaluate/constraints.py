"""Hard limits on what a candidate costs (`params<=20000`, `latency_ms<5`), and scalarized rewards
that trade accuracy against a cost (MnasNet's `ACC x (LAT/T)^w`, weighted sums).

Constraints are checked on measures known before training (evaluate/cost.py, or a benchmark
table's columns), so a candidate that cannot qualify is never trained: strategies draw feasible
candidates through a FeasibleSpace (strategy/feasible.py) and the evaluator refuses any that still
get through. A constraint is parsed with a regular expression, never evaluated as code.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, NasforgeError

_OPS: dict[str, Callable[[float, float], bool]] = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}
_SUFFIX = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}
_PATTERN = re.compile(
    r"^\s*(?P<measure>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op><=|>=|<|>)\s*"
    r"(?P<number>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(?P<suffix>[kKMG]?)\s*$"
)


class NoFeasibleCandidate(NasforgeError):
    """The constraints leave no candidate a strategy could find in its bounded number of tries."""


@dataclass(frozen=True)
class Constraint:
    measure: str
    op: str
    limit: float

    @classmethod
    def parse(cls, text: str | Constraint, known: Collection[str] | None = None) -> Constraint:
        """`MEASURE OP NUMBER[k|M|G]` with OP one of <= < >= >; `known` lists the measures allowed."""
        if isinstance(text, Constraint):
            constraint = text
        else:
            match = _PATTERN.match(str(text))
            if match is None:
                raise ConfigError(f"constraint {text!r}: expected MEASURE<=NUMBER (or <, >=, >), e.g. 'params<=20000' or "
                                  "'latency_ms<5'")
            number = float(match["number"]) * _SUFFIX[match["suffix"]]
            if not math.isfinite(number):
                raise ConfigError(f"constraint {text!r}: the limit must be a finite number")
            constraint = cls(match["measure"], match["op"], number)
        if known is not None and constraint.measure not in known:
            raise ConfigError(f"constraint {str(text)!r}: unknown measure {constraint.measure!r}; known: {', '.join(sorted(known))}")
        return constraint

    def holds(self, value: float) -> bool:
        return bool(_OPS[self.op](float(value), self.limit))

    def __str__(self) -> str:
        return f"{self.measure}{self.op}{self.limit:g}"


def parse_constraints(texts: Iterable[str | Constraint], known: Collection[str] | None = None) -> tuple[Constraint, ...]:
    return tuple(Constraint.parse(t, known) for t in texts)


def violation(constraints: Iterable[Constraint], values: Mapping[str, Any]) -> str | None:
    """Why `values` break the constraints (the first broken one), or None when all hold."""
    for c in constraints:
        value = values.get(c.measure)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return f"no value for {c.measure} (constraint {c})"
        if not c.holds(value):
            return f"{c.measure}={value:g} breaks {c}"
    return None


def measures_of(constraints: Iterable[Constraint]) -> set[str]:
    return {c.measure for c in constraints}


# -- scalarized rewards ----------------------------------------------------------------------------

@dataclass(frozen=True)
class MnasNetReward:
    """Tan et al. 2019: `reward x (value/target)^w`, w = alpha when value <= target, else beta.
    Soft (alpha = beta = -0.07) trades a little accuracy for speed everywhere; hard (alpha = 0,
    beta = -1) leaves feasible candidates alone and penalises the others steeply."""

    measure: str
    target: float
    alpha: float = -0.07
    beta: float = -0.07

    SOFT = (-0.07, -0.07)
    HARD = (0.0, -1.0)

    @classmethod
    def of(cls, measure: str, target: float, mode: str = "soft", alpha: float | None = None, beta: float | None = None) -> MnasNetReward:
        if mode not in ("soft", "hard"):
            raise ConfigError(f"scalarize.mode: {mode!r} is not soft or hard")
        a, b = cls.SOFT if mode == "soft" else cls.HARD
        return cls(measure, float(target), a if alpha is None else float(alpha), b if beta is None else float(beta))

    def __post_init__(self) -> None:
        if not self.target > 0:
            raise ConfigError(f"scalarize.target: the MnasNet reward needs a positive target for {self.measure}, got {self.target}")

    @property
    def measures(self) -> tuple[str, ...]:
        return (self.measure,)

    def __call__(self, reward: float, metrics: Mapping[str, Any]) -> float:
        value = max(float(metrics[self.measure]), 1e-12)  # a zero cost would make a negative power infinite
        w = self.alpha if value <= self.target else self.beta
        return float(reward * (value / self.target) ** w)

    def __str__(self) -> str:
        return f"reward x ({self.measure}/{self.target:g})^w, w={self.alpha:g} if {self.measure}<={self.target:g} else {self.beta:g}"


@dataclass(frozen=True)
class WeightedSum:
    """`sum(weight x value)` over named measures; the name `reward` is the unscalarized reward.
    Give costs negative weights, e.g. {accuracy: 1, params: -1e-6}."""

    weights: tuple[tuple[str, float], ...]

    @classmethod
    def of(cls, weights: Mapping[str, float]) -> WeightedSum:
        if not weights:
            raise ConfigError("scalarize.weights: a weighted sum needs at least one name: weight")
        return cls(tuple((str(k), float(v)) for k, v in weights.items()))

    @property
    def measures(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.weights if name != "reward")

    def __call__(self, reward: float, metrics: Mapping[str, Any]) -> float:
        return float(sum(w * (reward if name == "reward" else float(metrics[name])) for name, w in self.weights))

    def __str__(self) -> str:
        return " + ".join(f"{w:g}*{name}" for name, w in self.weights)


Scalarization = MnasNetReward | WeightedSum


def scalarize(scalarization: Scalarization | None, reward: float, metrics: Mapping[str, Any]) -> float:
    """The reward a strategy sees; a missing measure is an error naming it (a bug in the wiring, or
    a measure the evaluator does not record)."""
    if scalarization is None:
        return reward
    missing = [m for m in scalarization.measures if metrics.get(m) is None]
    if missing:
        raise KeyError(f"the scalarized reward needs {', '.join(missing)}, which this trial did not record")
    return scalarization(reward, metrics)
