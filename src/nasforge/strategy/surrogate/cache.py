"""The candidates a surrogate scores on every ask, kept from one ask to the next: the neighbourhoods
of the best architectures (every one-decision edit, and every two-decision edit of the very best).

For each cached candidate it keeps its choice vector, features, kernel row against the GP's members,
quadratic form k^T K^-1 k (hence its posterior variance), posterior mean and parent trial. Each new
member updates them all by one kernel column, O(candidates * n), in one pass over the kernel rows
(`member_added`); an ask then only adds the UCB bonus and takes the arg-max.

Per-query numpy overhead is what counts at ~100 queries: features and kernel rows are stored
transposed (one row per feature, one row per member), so a new member's kernel column is one
contiguous row computed from only the rows of its non-zero features; 0/1 features are stored in
float32, where their dot products stay exact; known candidates (cached or evaluated) are filtered
through a look-up table of choice-vector codes in spaces small enough for one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .gp import IncrementalGP, grown

MAX_FAR = 4096  # two-edit neighbourhoods larger than this are not enumerated
# Initial capacity (columns) of the cache's arrays: growing them copies everything, so they start
# large enough for a tabular run (a few thousand cached candidates).
CACHE_CAP = 2048
KNOWN_TABLE = 1 << 20  # spaces of at most this many choice vectors get a look-up table of known codes


def is_binary(x: np.ndarray, x2: np.ndarray) -> bool:
    """Whether x (with squared row norms x2) is all 0s and 1s: in [0, 1], x^2 = x only there.
    Dot products of such rows are exact in float32 (for fewer than 2**24 features)."""
    return x.shape[1] < 1 << 24 and x.min() >= 0.0 and x.max() <= 1.0 and x.sum() == x2.sum()


def feature_rows(space: Any) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """rows -> (the space's decision features of the choice vectors `rows`, their squared norms)."""
    decision_features = space.decision_features

    def features(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(decision_features(rows), dtype=float)
        return x, (x * x).sum(1)

    return features


class NeighbourhoodCache:
    """Cached candidates of a space of categorical decisions with `sizes` choices each;
    `features(rows)` gives the feature rows of choice vectors and their squared norms."""

    def __init__(self, sizes: np.ndarray, features: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]):
        self.sizes, self.features = sizes, features
        # Choice vectors as one integer each (mixed radix) when they fit, for fast de-duplication.
        self.radix = None
        if float(np.prod(sizes.astype(float))) < 2.0**62:
            self.radix = np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]]).astype(np.int64)
        # Every one-decision edit of a choice vector: decision `nb_dec[i]` moves up by `nb_step[i]` (mod size).
        self.nb_dec = np.repeat(np.arange(len(sizes)), sizes - 1)
        self.nb_step = np.concatenate([np.arange(1, n) for n in sizes]).astype(np.int64)
        self.nb_size, self.nb_rows = sizes[self.nb_dec], np.arange(len(self.nb_dec))
        # Every two-decision edit, (decision, step) twice, when there are at most MAX_FAR of them.
        pairs = [(i, j) for i in range(len(self.nb_dec)) for j in range(i + 1, len(self.nb_dec))
                 if self.nb_dec[i] != self.nb_dec[j]] if len(self.nb_dec) <= 200 else []
        self.far = np.array(pairs, dtype=np.int64).reshape(-1, 2) if len(pairs) <= MAX_FAR else np.zeros((0, 2), dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        d = len(self.sizes)
        # Candidates, their features, kernel rows against the GP's members, quadratic forms
        # k^T K^-1 k, parent trials, and 0 (alive) or -inf (evaluated or refused). Features and
        # kernel rows are stored transposed (one row per feature, one row per member).
        self.p = 0
        self.choices = np.zeros((0, d), dtype=np.int64)
        self.xt, self.x2, self.kt, self.q = np.zeros((0, 0)), np.zeros(0), np.zeros((0, 0)), np.zeros(0)
        self.dead = np.zeros(0)
        self.parent = np.zeros(0, dtype=np.int64)
        # Posterior means k^T alpha once the GP has alpha, brought up to date by each new member (in
        # the same pass over the kernel rows as the variance update).
        self.mean = np.zeros(0)
        self.index: dict[Any, int] = {}  # a candidate's code -> its column
        # Codes cached or evaluated as a flat table, so a batch of candidates is filtered in one
        # numpy step; None for large spaces (the dicts of codes do it then).
        total = int(np.prod(self.sizes)) if self.radix is not None else 0
        self.known = np.zeros(total, dtype=bool) if 0 < total <= KNOWN_TABLE else None

    def codes_of(self, rows: np.ndarray) -> list[Any]:
        """One hashable code per choice vector: Python ints (mixed radix) when they fit, else bytes.
        Plain Python objects, not numpy scalars: they are hashed in dict look-ups on every query."""
        if self.radix is not None:
            return (rows @ self.radix).tolist()
        return [row.tobytes() for row in rows]

    def code_of(self, choices: np.ndarray) -> Any:
        return int(choices @ self.radix) if self.radix is not None else choices.tobytes()

    def features_at(self, at: int) -> tuple[np.ndarray, float]:
        """A cached candidate's features (the same values as computing them again: exact 0/1-style)."""
        return self.xt[:, at].astype(float), float(self.x2[at])

    def grow_members(self, capacity: int) -> None:
        """Room for kernel rows of `capacity` members (the GP grew)."""
        if self.p:
            self.kt = grown(self.kt, capacity, self.kt.shape[1])

    def _column(self, v: np.ndarray, v2: float, length_scale: float, out: np.ndarray) -> np.ndarray:
        """k(cached candidates, v), reading only v's non-zero features (a handful of the cell
        space's 130: one-hot ops and live paths). For 0/1 features the dot products are exact
        integers either way, so this is bit-identical to the full product."""
        p = self.p
        nz = np.flatnonzero(v)
        c = 0.5 / (length_scale * length_scale)
        t = np.matmul(v[nz].astype(self.xt.dtype), self.xt[nz, :p], out=out)
        t *= 2.0
        t -= self.x2[:p]
        t -= v2
        np.minimum(t, 0.0, out=t)
        t *= c
        return np.exp(t, out=t)

    def member_added(self, gp: IncrementalGP, v: np.ndarray, v2: float, b: np.ndarray, s: float, code: Any, at: int | None) -> None:
        """Member gp.n - 1 (features v, v2) has joined the GP (`b` = K^-1 k and `s` from IncrementalGP.add):
        its kernel column, the variance update and the posterior means of every cached candidate;
        `at`: its own column when it was cached (never scored again)."""
        n = gp.n - 1
        p = self.p
        if p:
            alpha = gp.alpha
            kc = self._column(v, v2, gp.length_scale, out=self.kt[n, :p])
            if alpha is None:
                u = b @ self.kt[:n, :p]
            else:  # one pass over the kernel rows (kc is row n now) for K^-1 k and the means
                u, self.mean[:p] = np.concatenate((b, (0.0,), alpha)).reshape(2, n + 1) @ self.kt[:n + 1, :p]
            u -= kc
            u *= u
            u /= s
            self.q[:p] += u
        if self.known is not None:
            self.known[code] = True
        if at is not None:
            self.dead[at] = -np.inf

    def rebuild(self, gp: IncrementalGP) -> None:
        """Kernel rows, quadratic forms and means from scratch (after IncrementalGP.rebuild)."""
        n, p = gp.n, self.p
        if p:
            kr, self.q[:p] = gp.cross(self.xt[:, :p].T, self.x2[:p])
            self.kt[:n, :p] = kr.T
        if gp.alpha is not None and p:
            self.mean[:p] = gp.alpha @ self.kt[:n, :p]

    def neighbour_rows(self, choices: np.ndarray, far: bool = False) -> np.ndarray:
        """Every one-decision edit of `choices` (and every two-decision edit when `far`)."""
        rows = np.repeat(choices[None, :], len(self.nb_dec), axis=0)
        rows[self.nb_rows, self.nb_dec] = (choices[self.nb_dec] + self.nb_step) % self.nb_size
        if far and len(self.far):
            two = np.repeat(choices[None, :], len(self.far), axis=0)
            at = np.arange(len(two))
            for k in (0, 1):
                e = self.far[:, k]
                two[at, self.nb_dec[e]] = (choices[self.nb_dec[e]] + self.nb_step[e]) % self.nb_size[e]
            rows = np.concatenate([rows, two])
        return rows

    def add(self, rows: np.ndarray, trial: int | np.ndarray, gp: IncrementalGP) -> None:
        """Unseen, uncached rows into the cache; `trial`: their parent's trial (one, or one per row)."""
        keep: np.ndarray | list[int]
        codes: list[Any]
        if self.known is not None:
            # Unknown codes, first occurrences in order: what the loop below keeps, vectorised.
            all_codes = rows @ self.radix
            unknown = np.flatnonzero(~self.known[all_codes])
            _, first = np.unique(all_codes[unknown], return_index=True)
            keep = unknown[np.sort(first)]
            if not len(keep):
                return
            found = all_codes[keep]
            self.known[found] = True
            codes = found.tolist()
        else:
            kept: list[int] = []
            codes, new = [], set()
            for i, c in enumerate(self.codes_of(rows)):
                if c not in self.index and c not in gp.codes and c not in new:
                    kept.append(i)
                    codes.append(c)
                    new.add(c)
            if not kept:
                return
            keep = kept
        rows = rows[keep]
        if not np.isscalar(trial):
            trial = np.asarray(trial)[keep]
        x, x2 = self.features(rows)
        kr, q = gp.cross(x, x2)
        p, m, n = self.p, len(rows), gp.n
        if p == 0 or self.xt.dtype == np.float32:
            # 0/1 features are stored in float32, where their dot products are still exact: half
            # the memory traffic of the largest array. Anything else turns the store to float64.
            dtype = np.float32 if is_binary(x, x2) else np.float64
            if p == 0:
                self.xt = np.zeros((x.shape[1], 0), dtype=dtype)
            elif dtype != self.xt.dtype:
                self.xt = self.xt.astype(dtype)
        if p + m > len(self.q):
            cap = max(p + m, 2 * len(self.q), CACHE_CAP)
            self.xt = grown(self.xt, x.shape[1], cap)
            self.choices, self.x2, self.q, self.dead, self.parent, self.mean = (
                grown(a, cap) for a in (self.choices, self.x2, self.q, self.dead, self.parent, self.mean))
            self.kt = grown(self.kt, gp.capacity, cap)
        self.choices[p:p + m], self.x2[p:p + m] = rows, x2
        self.xt[:, p:p + m] = x.T
        self.kt[:n, p:p + m], self.q[p:p + m] = kr.T, q
        if gp.alpha is not None:
            self.mean[p:p + m] = kr @ gp.alpha
        self.dead[p:p + m], self.parent[p:p + m] = 0.0, trial
        self.index.update(zip(codes, range(p, p + m)))
        self.p = p + m

    def scores(self, gp: IncrementalGP, kappa: float) -> np.ndarray:
        """The UCB score of every cached candidate (-inf for the dead), in standardised units."""
        p = self.p
        score = gp.ucb_bonus(self.q[:p], kappa)
        score += self.mean[:p]
        score += self.dead[:p]
        return score
