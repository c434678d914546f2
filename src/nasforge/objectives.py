"""Objectives of a study and the Pareto front of its trials.

An objective is a name looked up on a trial (a metric such as `accuracy`, `flops`, `latency_ms`, or
a trial field such as `params`, `train_seconds`, `reward`) and a direction. Costs are minimised and
scores maximised; a name may carry its direction explicitly as `name:min` / `name:max`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import NasforgeError
from .store import TrialRecord

# Names minimised unless told otherwise; everything else (accuracy, f1, reward, ...) is maximised.
COSTS = {"params", "flops", "latency_ms", "latency", "size_bytes", "model_bytes", "loss", "train_seconds", "error"}


@dataclass(frozen=True)
class Objective:
    name: str
    maximize: bool

    @staticmethod
    def parse(text: str | Objective) -> Objective:
        if isinstance(text, Objective):
            return text
        name, _, goal = str(text).strip().partition(":")
        if goal not in ("", "min", "max"):
            raise NasforgeError(f"objective {text!r}: direction must be 'min' or 'max'")
        if not name:
            raise NasforgeError(f"objective {text!r} has no name")
        maximize = goal == "max" if goal else not (name in COSTS or name.startswith("lat_"))
        return Objective(name, maximize)

    @property
    def label(self) -> str:
        return f"{self.name} ({'max' if self.maximize else 'min'})"


def objective_value(trial: TrialRecord, name: str) -> float | None:
    """A trial's value for an objective: a stored metric first, then a field of the trial."""
    value: Any = trial.metrics.get(name) if trial.metrics else None
    if value is None and name in ("params", "train_seconds", "reward"):
        value = getattr(trial, name)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def study_objectives(config: dict[str, Any]) -> list[Objective]:
    """The objectives a study declared (`objectives: [accuracy, params]` or `"accuracy,params"` in its
    config, at the top level or under `strategy`); empty for a single-objective study."""
    raw = config.get("objectives")
    if raw is None and isinstance(config.get("strategy"), dict):
        raw = config["strategy"].get("objectives")
    if raw is None:
        return []
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    parsed = []
    for item in items:
        if isinstance(item, dict):  # {name: ..., goal: min|max}
            goal = item.get("goal") or item.get("direction")
            item = f"{item['name']}:{goal}" if goal else item["name"]
        parsed.append(Objective.parse(item))
    return parsed


def objective_matrix(trials: Iterable[TrialRecord], objectives: Sequence[str | Objective]) -> tuple[list[TrialRecord], np.ndarray]:
    """The complete trials that have a value for every objective, and their values as an n x m
    array oriented for minimisation (maximised objectives negated), the form the functions below take."""
    objs = [Objective.parse(o) for o in objectives]
    kept, rows = [], []
    for trial in trials:
        if trial.status != "complete":
            continue
        values = [v for v in (objective_value(trial, o.name) for o in objs) if v is not None]
        if len(values) < len(objs):
            continue
        kept.append(trial)
        rows.append([-v if o.maximize else v for v, o in zip(values, objs, strict=True)])
    return kept, np.asarray(rows, dtype=float).reshape(len(rows), len(objs))


def pareto_front(trials: Iterable[TrialRecord], objectives: Sequence[str | Objective]) -> list[TrialRecord]:
    """The complete trials no other complete trial dominates on `objectives`, in trial order.

    Trials missing a value for any objective take no part. Equal points are all kept.
    """
    if not objectives:
        raise NasforgeError("a Pareto front needs at least one objective")
    kept, points = objective_matrix(trials, objectives)
    mask = pareto_mask(points)
    return sorted((t for t, on in zip(kept, mask, strict=True) if on), key=lambda t: t.id)


def front_hypervolume(trials: Iterable[TrialRecord], objectives: Sequence[str | Objective],
                      reference: Sequence[float]) -> float:
    """Hypervolume of the trials' front against `reference`, given in the objectives' own units and
    directions (e.g. accuracy 0, params 20000 for `accuracy,params`)."""
    objs = [Objective.parse(o) for o in objectives]
    if len(reference) != len(objs):
        raise NasforgeError(f"a reference point needs {len(objs)} values (one per objective), got {len(reference)}")
    _, points = objective_matrix(trials, objs)
    ref = [-r if o.maximize else r for r, o in zip(reference, objs, strict=True)]
    return hypervolume(points, ref)


# -- the arithmetic of Pareto search, on arrays to minimise (n points x m objectives) -----------------
# Written here rather than taken from pymoo (a heavy dependency for a few dozen lines) or from
# Optuna's private modules (no stable API); tests check it against hand-made points and an
# independent grid computation of the dominated volume. Against moocore 0.3.2, the maintained C
# library (benchmarks/performance/pareto_maths.py, 2026-12-03): the same masks, fronts and
# hypervolumes; moocore is 5-300x faster, but at a search's sizes this costs under 1 ms a call for
# 100 trials (a non-dominated sort of 1,000: 48 ms), once per generation, against seconds of
# training per candidate, so a compiled dependency is not worth taking for it.

def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """`a` is nowhere worse than `b` and somewhere better (minimisation)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return bool(np.all(x <= y) and np.any(x < y))


def pareto_mask(points: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of `points` (equal rows are all kept)."""
    points = np.asarray(points, dtype=float)
    n = len(points)
    mask = np.ones(n, dtype=bool)
    if n == 0:
        return mask
    # Sweeping from the lexicographically best point removes most rows early, so this stays fast on
    # whole benchmark tables (tens of thousands of rows), not only on populations.
    for i in np.lexsort(points.T[::-1]):
        if mask[i]:
            p = points[i]
            mask &= ~(np.all(p <= points, axis=1) & np.any(p < points, axis=1))
    return mask


def non_dominated_sort(points: np.ndarray) -> list[list[int]]:
    """Deb's fronts: indices of the first front (non-dominated), then of the front once the first is
    removed, and so on. Quadratic in the number of points, as in NSGA-II."""
    points = np.asarray(points, dtype=float)
    n = len(points)
    if n == 0:
        return []
    le = np.all(points[:, None, :] <= points[None, :, :], axis=2)
    lt = np.any(points[:, None, :] < points[None, :, :], axis=2)
    dominated_by = le & lt  # [i, j]: i dominates j
    count = dominated_by.sum(axis=0)
    fronts: list[list[int]] = []
    current = np.flatnonzero(count == 0)
    while len(current):
        fronts.append([int(i) for i in current])
        count = count - dominated_by[current].sum(axis=0)
        count[current] = -1  # placed
        current = np.flatnonzero(count == 0)
    return fronts


def crowding_distance(points: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance of each point of one front: per objective, the normalised gap
    between its neighbours; the extremes of every objective get infinity."""
    points = np.asarray(points, dtype=float)
    n, m = points.shape if points.ndim == 2 else (len(points), 0)
    distance = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for k in range(m):
        order = np.argsort(points[:, k], kind="stable")
        values = points[order, k]
        distance[order[0]] = distance[order[-1]] = np.inf
        span = values[-1] - values[0]
        if span > 0:
            distance[order[1:-1]] += (values[2:] - values[:-2]) / span
    return distance


def hypervolume(points: np.ndarray, reference: Sequence[float]) -> float:
    """The volume dominated by `points` and bounded by `reference` (minimisation). Points not
    strictly better than the reference in every objective add nothing. Exact: a sweep in 2-D,
    slicing along the last objective above that (fine for the fronts of a search)."""
    ref = np.asarray(reference, dtype=float)
    points = np.asarray(points, dtype=float).reshape(-1, len(ref))
    points = points[np.all(points < ref, axis=1)]
    if len(points) == 0:
        return 0.0
    return float(_hv(points[pareto_mask(points)], ref))


def _hv(points: np.ndarray, ref: np.ndarray) -> float:
    if points.shape[1] == 1:
        return float(ref[0] - points[:, 0].min())
    if points.shape[1] == 2:
        # The caller passes a front: sorted by x, y falls, and each point owns the strip from its
        # x to the next point's x, down from the reference's y.
        front = points[np.lexsort((points[:, 1], points[:, 0]))]
        xs = np.append(front[:, 0], ref[0])
        return float(np.sum((xs[1:] - xs[:-1]) * (ref[1] - front[:, 1])))
    last = points[:, -1]
    levels = np.unique(last)
    bounds = np.append(levels[1:], ref[-1])
    volume = 0.0
    for level, upper in zip(levels, bounds, strict=True):
        below = points[last <= level, :-1]
        volume += (upper - level) * _hv(below[pareto_mask(below)], ref[:-1])
    return volume
