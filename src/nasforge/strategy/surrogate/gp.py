"""A Gaussian process over architectures' decision features, grown one member at a time.

RBF kernel on `space.decision_features` (one-hot decisions, plus the path encoding for the cell
space), fitted to standardised rewards. Rewards below the `clip_quantile` of those seen are raised
to it before fitting: the search only needs the surrogate to be right near the top, and a few
broken architectures (10% accuracy) would otherwise dominate a least-squares fit; `target` "gap"
fits -log(distance to the best) instead, which stretches the top.

Nothing is refitted from scratch: with a fixed length scale the kernel matrix only grows, and each
member updates the inverse kernel matrix by a block (rank-one) step, O(n^2) (`add`). With
`length_scale=None` the length scale is picked by marginal likelihood from GRID at every `rebuild`,
which recomputes K^-1 from scratch. Member arrays have spare capacity and grow by doubling.
"""

from __future__ import annotations

import bisect
import math
from typing import Any

import numpy as np

GRID = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
# Initial capacity (rows) of the members' arrays: growing them copies everything, so they start
# large enough for a tabular run (~100 queries).
MEMBER_CAP = 128


def sq_dist(a: np.ndarray, a2: np.ndarray, b: np.ndarray, b2: np.ndarray) -> np.ndarray:
    """Squared distances between rows of a and b, given their squared norms a2 and b2."""
    return np.maximum(a2[:, None] + b2[None, :] - 2.0 * (a @ b.T), 0.0)


def grown(array: np.ndarray, rows: int, cols: int | None = None) -> np.ndarray:
    """`array` with room for at least `rows` (and `cols`) entries, doubling; contents kept."""
    shape = list(array.shape)
    need_rows = rows > shape[0]
    need_cols = cols is not None and cols > shape[1]
    if not need_rows and not need_cols:
        return array
    if need_rows:
        shape[0] = max(rows, 2 * shape[0], 16)
    if need_cols:
        shape[1] = max(cols, 2 * shape[1], 16)
    out = np.zeros(shape, dtype=array.dtype)
    out[tuple(slice(0, s) for s in array.shape)] = array
    return out


def quantile(values: np.ndarray, q: float, ordered: list[float] | None = None) -> float:
    """np.quantile's default (linear) quantile, without its overhead: this runs on every tell.
    `ordered`, when given, is `values` already sorted."""
    ranked: list[float] | np.ndarray = np.sort(values) if ordered is None else ordered
    pos = q * (len(ranked) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ranked) - 1)
    return float(ranked[lo] + (ranked[hi] - ranked[lo]) * (pos - lo))


def select_length_scale(x: np.ndarray, y: np.ndarray, noise: float) -> float:
    """The grid length scale of highest GP marginal likelihood for standardised targets of y."""
    t = (y - y.mean()) / (y.std() or 1.0)
    x2 = (x * x).sum(1)
    d = sq_dist(x, x2, x, x2)
    best_lml, best_ls = None, GRID[0]
    for ls in GRID:
        chol = np.linalg.cholesky(np.exp(-d / (2 * ls * ls)) + noise * np.eye(len(y)))
        z = np.linalg.solve(chol, t)
        lml = -0.5 * z @ z - np.log(np.diag(chol)).sum()
        if best_lml is None or lml > best_lml:
            best_lml, best_ls = lml, ls
    return best_ls


class IncrementalGP:
    """The members (evaluated architectures as choice vectors, their features, rewards and trials),
    K^-1 = (K + noise I)^-1 over them, and, from `start` members on, `alpha` = K^-1 times the
    standardised targets (the posterior mean's weights)."""

    def __init__(self, decisions: int, length_scale: float | None = 4.0, noise: float = 1e-2, clip_quantile: float = 0.5,
                 target: str = "clip", start: int = 2):
        self.decisions, self.fixed_length_scale, self.noise = decisions, length_scale, noise
        self.clip_quantile, self.target, self.start = clip_quantile, target, start
        self.reset()

    def reset(self) -> None:
        self.length_scale = self.fixed_length_scale or 4.0
        # The members (arrays with spare capacity, grown by doubling): features, their squared
        # norms, the inverse of K + noise * I, rewards, trials and choice vectors.
        self.n = 0
        self.x, self.x2, self.kinv = np.zeros((0, 0)), np.zeros(0), np.zeros((0, 0))
        self.rewards, self.trials = np.zeros(0), np.zeros(0, dtype=np.int64)
        self.choices = np.zeros((0, self.decisions), dtype=np.int64)
        self.codes: dict[Any, int] = {}  # a member's choice-vector code -> its row
        self.sorted: list[float] = []  # the members' rewards, ascending (ranks and quantiles)
        self.alpha: np.ndarray | None = None

    @property
    def capacity(self) -> int:
        return len(self.rewards)

    def kernel(self, d2: np.ndarray) -> np.ndarray:
        return np.exp(d2 * (-0.5 / (self.length_scale * self.length_scale)))

    def column(self, v: np.ndarray, v2: float) -> np.ndarray:
        """k(members, v) for one feature vector v (in place, few temporaries: this runs per tell)."""
        n = self.n
        c = 0.5 / (self.length_scale * self.length_scale)
        t = self.x[:n] @ v
        t *= 2.0
        t -= self.x2[:n]
        t -= v2
        np.minimum(t, 0.0, out=t)  # -squared distance
        t *= c
        return np.exp(t, out=t)

    def cross(self, x: np.ndarray, x2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Kernel rows of candidates against the members, and their quadratic forms k^T K^-1 k."""
        n = self.n
        kr = self.kernel(sq_dist(x, x2, self.x[:n], self.x2[:n]))
        return kr, ((kr @ self.kinv[:n, :n]) * kr).sum(1)

    def grow(self, width: int) -> int:
        """Room for more members (features of `width` values); returns the new capacity."""
        cap = max(MEMBER_CAP, 2 * len(self.rewards))
        self.x = grown(np.zeros((0, width)) if self.n == 0 else self.x, cap)
        self.x2, self.rewards, self.trials, self.choices = (grown(a, cap) for a in (self.x2, self.rewards, self.trials, self.choices))
        self.kinv = grown(self.kinv, cap, cap)
        return cap

    def add(self, v: np.ndarray, v2: float, k: np.ndarray, reward: float, trial: int, choices: np.ndarray, code: Any
            ) -> tuple[np.ndarray, float, int]:
        """One member with features v (squared norm v2) and kernel column `k` against the members
        (block update of K^-1; capacity must be there, see `grow`). Returns K^-1 k and the Schur
        complement s (with which a cache brings its candidates' variances up to date), and the rank
        of the reward among the members before it (how many had at least its reward)."""
        n = self.n
        kinv = self.kinv[:n, :n]
        b = kinv @ k
        s = 1.0 + self.noise - k @ b
        bs = b / s
        kinv += np.outer(b, bs)
        self.kinv[:n, n] = self.kinv[n, :n] = -bs
        self.kinv[n, n] = 1.0 / s
        self.x[n], self.x2[n] = v, v2
        self.rewards[n], self.trials[n], self.choices[n] = reward, trial, choices
        rank = n - bisect.bisect_left(self.sorted, reward)  # members before it with at least its reward
        bisect.insort(self.sorted, reward)
        self.alpha = self.alpha_of(n + 1) if n + 1 >= self.start else None
        self.n = n + 1
        self.codes[code] = n
        return b, s, rank

    def rebuild(self) -> None:
        """K^-1 from scratch (after a new length scale, and against drift), and alpha with it."""
        n = self.n
        x, x2 = self.x[:n], self.x2[:n]
        if self.fixed_length_scale is None and n >= 2:
            self.length_scale = select_length_scale(x, self.targets(self.rewards[:n]), self.noise)
        k = self.kernel(sq_dist(x, x2, x, x2)) + self.noise * np.eye(n)
        chol_inv = np.linalg.inv(np.linalg.cholesky(k))
        self.kinv[:n, :n] = chol_inv.T @ chol_inv
        if self.alpha is not None:
            self.alpha = self.alpha_of(n)

    def alpha_of(self, n: int) -> np.ndarray:
        """K^-1 times the standardised targets of the first n members."""
        t = self.targets(self.rewards[:n], self.sorted)
        # t.mean() and t.std() spelled out (the same operations, hence the same bits, without
        # their Python overhead).
        t -= t.sum() / n
        t /= math.sqrt((t * t).sum() / n) or 1.0
        return self.kinv[:n, :n] @ t

    def targets(self, rewards: np.ndarray, ordered: list[float] | None = None) -> np.ndarray:
        """What the GP fits for these rewards: clipped from below at their `clip_quantile`, and for
        target "gap" turned into -log(distance to the best)."""
        y = np.maximum(rewards, quantile(rewards, self.clip_quantile, ordered))
        if self.target == "gap":
            # -log(distance to the best so far): stretches the top, where the search must choose.
            spread = y.max() - y.min() or 1.0
            y = -np.log(y.max() - y + 0.01 * spread)
        return y

    def ucb_bonus(self, q: np.ndarray, kappa: float) -> np.ndarray:
        """kappa * posterior std, both in standardised units, from the quadratic forms k^T K^-1 k."""
        v = 1.0 - q
        np.maximum(v, 1e-12, out=v)
        np.sqrt(v, out=v)
        v *= kappa
        return v
