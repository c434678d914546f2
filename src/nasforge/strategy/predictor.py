"""Predictor-guided evolution: a surrogate ranks many mutants, only the most promising are evaluated.

Each ask fits a Gaussian-process surrogate to every architecture evaluated so far (features from
`space.decision_features`: one-hot decisions, plus the path encoding for the cell space), breeds a
pool of candidates by editing 1..`max_edits` decisions of the best `parents` members (plus
optional uniform samples), and returns the unseen candidate with the highest upper confidence
bound `mean + kappa * std`. Evaluations are the expensive part; fitting a GP to a hundred points
and scoring a few thousand candidates is milliseconds.

Rewards below the `clip_quantile` of those seen are raised to it before fitting: the search only
needs the surrogate to be right near the top, and a few broken architectures (10% accuracy) would
otherwise dominate a least-squares fit.

The state is the evaluated members and the RNG: the surrogate is refitted from them on every ask,
so a resumed study proposes exactly what an uninterrupted one would.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..space.base import SearchSpace
from .base import Candidate, Member, Strategy
from .decisions import decision_sizes, encode_or_none


class GaussianProcess:
    """Exact GP regression with an RBF kernel on standardised targets; the length scale is fixed
    or picked by marginal likelihood from a small grid."""

    GRID = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0)

    def __init__(self, length_scale: float | None = None, noise: float = 1e-2):
        self.length_scale, self.noise = length_scale, noise

    @staticmethod
    def _sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T, 0.0)

    def fit(self, x: np.ndarray, y: np.ndarray) -> GaussianProcess:
        self.x = x
        self.mu, self.sd = float(y.mean()), float(y.std()) or 1.0
        t = (y - self.mu) / self.sd
        d = self._sq_dist(x, x)
        best = None
        for ls in (self.length_scale,) if self.length_scale else self.GRID:
            k = np.exp(-d / (2 * ls * ls)) + self.noise * np.eye(len(y))
            chol = np.linalg.cholesky(k)
            alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, t))
            # Log marginal likelihood up to a constant.
            lml = -0.5 * t @ alpha - np.log(np.diag(chol)).sum()
            if best is None or lml > best[0]:
                best = (lml, ls, chol, alpha)
        _, self.ls, self.chol, self.alpha = best
        return self

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ks = np.exp(-self._sq_dist(x, self.x) / (2 * self.ls * self.ls))
        mean = ks @ self.alpha
        v = np.linalg.solve(self.chol, ks.T)
        var = np.maximum(1.0 - (v * v).sum(0), 1e-12)
        return mean * self.sd + self.mu, np.sqrt(var) * self.sd


class PredictorEvolution(Strategy):
    name = "predictor"

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        init: int = 20,
        parents: int = 10,
        pool: int = 2000,
        random_pool: int = 500,
        max_edits: int = 3,
        kappa: float = 0.5,
        length_scale: float | None = 4.0,
        noise: float = 1e-2,
        clip_quantile: float = 0.5,
        target: str = "clip",
    ):
        super().__init__(space, seed)
        if init < 2 or parents < 1 or pool < 1 or random_pool < 0 or max_edits < 1 or kappa < 0 or not 0 <= clip_quantile < 1:
            raise ValueError("need init >= 2, parents >= 1, pool >= 1, random_pool >= 0, max_edits >= 1, kappa >= 0, "
                             "0 <= clip_quantile < 1")
        self.sizes = np.array(decision_sizes(space, self.name))
        # Choice vectors as one integer each (mixed radix) when they fit, for fast de-duplication.
        self._radix = None
        if float(np.prod(self.sizes.astype(float))) < 2.0**62:
            self._radix = np.concatenate([np.cumprod(self.sizes[::-1])[::-1][1:], [1]]).astype(np.int64)
        self.init, self.parents, self.pool, self.random_pool = init, parents, pool, random_pool
        self.max_edits, self.kappa, self.clip_quantile = max_edits, kappa, clip_quantile
        if target not in ("clip", "gap"):
            raise ValueError(f"target must be 'clip' or 'gap', got {target!r}")
        self.target = target
        self.model = GaussianProcess(length_scale, noise)
        self.members: list[Member] = []
        self._codes: list[list[int] | None] = []  # members' encodings (None: outside the decision form)
        self.seen: set[str] = set()
        self.pending: set[str] = set()

    # -- asking --------------------------------------------------------------------------------
    def _random_choices(self, n: int) -> np.ndarray:
        return np.floor(self.rng.random((n, len(self.sizes))) * self.sizes).astype(np.int64)

    def _breed(self, parents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mutants of each parent row (1..max_edits random decision edits) and their parent index."""
        per = max(1, self.pool // len(parents))
        origin = np.repeat(np.arange(len(parents)), per)
        pool = parents[origin].copy()
        edits = self.rng.integers(1, self.max_edits + 1, size=len(pool))
        rows = np.arange(len(pool))
        for e in range(self.max_edits):
            where = self.rng.integers(len(self.sizes), size=len(pool))
            value = np.floor(self.rng.random(len(pool)) * self.sizes[where]).astype(np.int64)
            live = edits > e
            pool[rows[live], where[live]] = value[live]
        return pool, origin

    def ask(self) -> Candidate:
        usable = [i for i, c in enumerate(self._codes) if c is not None]
        if len(usable) < self.init:
            return self._fresh_random()
        members = [self.members[i] for i in usable]
        x = np.array([self._codes[i] for i in usable], dtype=np.int64)
        rewards = np.array([m.reward for m in members], dtype=float)
        self.model.fit(self.space.decision_features(x), self._targets(rewards))

        top = np.argsort(-rewards, kind="stable")[: self.parents]
        pool, origin = self._breed(x[top])
        trials: list[int | None] = [members[int(top[o])].trial for o in origin]
        if self.random_pool:
            pool = np.concatenate([pool, self._random_choices(self.random_pool)])
            trials += [None] * self.random_pool
        codes, known = self._row_codes(pool), self._row_codes(x)
        _, first = np.unique(codes, return_index=True)
        fresh = first[~np.isin(codes[first], known)]
        if not len(fresh):
            return self._fresh_random()
        pool, trials = pool[fresh], [trials[int(i)] for i in fresh]
        mean, std = self.model.predict(self.space.decision_features(pool))
        for i in np.argsort(-(mean + self.kappa * std), kind="stable"):
            genome = self.space.decode(pool[int(i)])
            key = self.space.key(genome)
            if key in self.seen or key in self.pending:
                continue  # decoding may repair two choice vectors into one genome
            self.pending.add(key)
            parent = trials[int(i)]
            return Candidate(genome, (parent,) if parent is not None else (), "predicted")
        return self._fresh_random()

    def _targets(self, rewards: np.ndarray) -> np.ndarray:
        y = np.maximum(rewards, np.quantile(rewards, self.clip_quantile))
        if self.target == "gap":
            # -log(distance to the best so far): stretches the top, where the search must choose.
            spread = y.max() - y.min() or 1.0
            y = -np.log(y.max() - y + 0.01 * spread)
        return y

    def _row_codes(self, rows: np.ndarray) -> np.ndarray:
        if self._radix is not None:
            return rows @ self._radix
        return np.array([row.tobytes() for row in rows], dtype=object)

    def _fresh_random(self) -> Candidate:
        genome = self.space.sample(self.rng)
        self.pending.add(self.space.key(genome))
        return Candidate(genome, (), "random")

    def tell(self, trial: int, candidate: Candidate, reward: float | None) -> None:
        key = self.space.key(candidate.genome)
        self.pending.discard(key)
        if key in self.seen:
            return
        self.seen.add(key)  # failed ones too: never proposed again
        if reward is not None:
            self._add(Member(trial, candidate.genome, reward))

    def _add(self, member: Member) -> None:
        self.members.append(member)
        self._codes.append(encode_or_none(self.space, member.genome))

    def _state(self) -> dict[str, Any]:
        return {"members": self._dump_members(self.members), "seen": sorted(self.seen), "pending": sorted(self.pending)}

    def _load(self, state: dict[str, Any]) -> None:
        self.members, self._codes = [], []
        for member in self._load_members(state["members"]):
            self._add(member)
        self.seen = set(state["seen"])
        self.pending = set(state["pending"])
