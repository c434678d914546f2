"""REINFORCE (Williams 1992) over a space's categorical decisions, as used for NAS by Zoph & Le (2017)
and in NAS-Bench-201's baselines.

The policy is either independent categorical logits per decision or an LSTM controller that
emits the decisions one after another, each conditioned on the ones before (Zoph & Le). It is
trained by policy gradient on the rewards with a moving-average baseline (momentum 0.9), an
entropy bonus and Adam. Advantages are divided by a running mean of their magnitude so the same
learning rate and entropy weight work for accuracies in % and in fractions.

Sampling draws from the strategy's numpy RNG and the whole policy (weights, Adam moments,
baseline) is in `state_dict` as plain lists, so a resumed study samples exactly what it would have.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from ..space.base import Genome, SearchSpace
from .base import Candidate, FixedOptions, Observation, Strategy, flag
from .decisions import choices_of, decision_sizes


class _Independent:
    """One logit vector per decision (padded to the widest decision, masked), in numpy: the
    gradients of log-softmax and entropy are closed-form, and numpy is far cheaper than autograd
    for a few dozen numbers."""

    def __init__(self, sizes: list[int], lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.sizes = sizes
        width = max(sizes)
        self.valid = np.arange(width)[None, :] < np.array(sizes)[:, None]
        self.logits = np.zeros((len(sizes), width))
        self.lr, self.betas, self.eps = lr, betas, eps
        self.m, self.v, self.t = np.zeros_like(self.logits), np.zeros_like(self.logits), 0

    def log_probs(self) -> np.ndarray:
        z = np.where(self.valid, self.logits, -np.inf)
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def probs(self) -> np.ndarray:
        return np.exp(self.log_probs())

    def sample(self, rng: np.random.Generator) -> list[int]:
        return _draw(self.probs(), rng)

    def update(self, choices: list[int], advantage: float, entropy_weight: float, live: list[bool] | None = None) -> None:
        """One Adam step on -advantage * log p(choices) - entropy_weight * H. A decision that did not
        occur (`live` False) has no gradient and keeps its logits and Adam moments as they were (the
        step count is shared, so its bias correction runs ahead: a small, bounded inexactness)."""
        logp = self.log_probs()
        p = np.exp(logp)
        onehot = np.zeros_like(p)
        onehot[np.arange(len(choices)), choices] = 1.0
        plogp = np.where(self.valid, p * np.where(self.valid, logp, 0.0), 0.0)
        entropy = -plogp.sum(axis=1, keepdims=True)
        # d(log p_c)/dz = onehot - p;  dH/dz = -p * (log p + H), per decision.
        grad = -advantage * (onehot - p) + entropy_weight * (plogp + p * entropy)
        grad = np.where(self.valid, grad, 0.0)
        b1, b2 = self.betas
        self.t += 1
        m = b1 * self.m + (1 - b1) * grad
        v = b2 * self.v + (1 - b2) * grad * grad
        m_hat, v_hat = m / (1 - b1**self.t), v / (1 - b2**self.t)
        logits = self.logits - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
        if live is None:
            self.m, self.v, self.logits = m, v, logits
        else:
            rows = np.asarray(live, dtype=bool)[:, None]
            self.m, self.v, self.logits = np.where(rows, m, self.m), np.where(rows, v, self.v), np.where(rows, logits, self.logits)

    def state(self) -> dict[str, Any]:
        return {"logits": self.logits.tolist(), "m": self.m.tolist(), "v": self.v.tolist(), "t": self.t}

    def load(self, state: dict[str, Any]) -> None:
        self.logits, self.m, self.v = (np.array(state[k], dtype=float) for k in ("logits", "m", "v"))
        self.t = int(state["t"])


class _LSTMController(nn.Module):
    """Zoph & Le's controller: an LSTM cell steps through the decisions; each step reads the
    embedding of the previous choice and a per-decision head gives the next logits."""

    def __init__(self, sizes: list[int], hidden: int, generator: torch.Generator, lr: float):
        super().__init__()
        self.sizes = sizes
        self.hidden = hidden
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.cell = nn.LSTMCell(hidden, hidden)
        self.embed = nn.ModuleList(nn.Embedding(n, hidden) for n in sizes)
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in sizes)
        with torch.no_grad():
            for p in self.parameters():
                if p.dim() > 1:
                    p.copy_(torch.empty_like(p).uniform_(-0.1, 0.1, generator=generator))
                else:
                    p.zero_()
        self.optimizer = torch.optim.Adam(self.parameters(), lr=lr)

    def _run(self, choices: list[int] | None, rng: np.random.Generator | None) -> tuple[list[int], list[torch.Tensor]]:
        x: torch.Tensor = self.start
        state = None
        taken, logps = [], []
        for i, (head, embed) in enumerate(zip(self.heads, self.embed)):
            h, c = self.cell(x, state)
            state = (h, c)
            logp = torch.log_softmax(head(h)[0], dim=0)
            if choices is not None:
                k = choices[i]
            elif rng is not None:
                k = _draw(logp.detach().exp().double().numpy()[None, :], rng)[0]
            else:
                raise ValueError("the controller needs the choices to score or a generator to draw them with")
            taken.append(k)
            logps.append(logp)
            x = embed(torch.tensor([k]))  # the choice's embedding row, 1 x hidden
        return taken, logps

    def sample(self, rng: np.random.Generator) -> list[int]:
        with torch.no_grad():
            return self._run(None, rng)[0]

    def update(self, choices: list[int], advantage: float, entropy_weight: float, live: list[bool] | None = None) -> None:
        """One Adam step; decisions that did not occur (`live` False) add no terms to the loss (the
        controller still read their sampled choices as it stepped past them)."""
        _, logps = self._run(choices, None)
        keep = live if live is not None else [True] * len(choices)
        if not any(keep):
            return
        taken, entropy = torch.zeros(()), torch.zeros(())
        for lp, k, on in zip(logps, choices, keep):
            if on:
                taken = taken + lp[k]
                entropy = entropy - (lp.exp() * lp).sum()
        loss = -advantage * taken - entropy_weight * entropy
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    def state(self) -> dict[str, Any]:
        return {"weights": _to_lists(self.state_dict()), "optimizer": _to_lists(self.optimizer.state_dict())}

    def load(self, state: dict[str, Any]) -> None:
        self.load_state_dict(_from_lists(state["weights"]))
        optimizer = _from_lists(state["optimizer"])
        optimizer["state"] = {int(k): v for k, v in optimizer["state"].items()}
        self.optimizer.load_state_dict(optimizer)


def _draw(probs: np.ndarray, rng: np.random.Generator) -> list[int]:
    """One choice per row of `probs` by inverse CDF (one uniform per decision, vectorised)."""
    cdf = np.cumsum(probs, axis=1)
    u = rng.random(len(probs)) * cdf[:, -1]
    return [int(k) for k in np.minimum((cdf <= u[:, None]).sum(axis=1), (probs > 0).sum(axis=1) - 1)]


class _EMA:
    """Bias-corrected exponential moving average (NB201's baseline)."""

    def __init__(self, momentum: float):
        self.momentum, self.numerator, self.denominator = momentum, 0.0, 0.0

    def update(self, value: float) -> None:
        self.numerator = self.momentum * self.numerator + (1 - self.momentum) * value
        self.denominator = self.momentum * self.denominator + (1 - self.momentum)

    @property
    def value(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None


def _to_lists(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return {"tensor": obj.detach().cpu().tolist(), "dtype": str(obj.dtype).removeprefix("torch.")}
    if isinstance(obj, dict):
        return {str(k): _to_lists(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_lists(v) for v in obj]
    return obj


def _from_lists(obj: Any) -> Any:
    if isinstance(obj, dict) and set(obj) == {"tensor", "dtype"}:
        return torch.tensor(obj["tensor"], dtype=getattr(torch, obj["dtype"]))
    if isinstance(obj, dict):
        return {k: _from_lists(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_from_lists(v) for v in obj]
    return obj


class ReinforceOptions(FixedOptions):
    controller: Literal["independent", "lstm"] = Field("independent", description="the policy: independent logits per "
                                                       "decision, or an LSTM that emits decisions in turn (Zoph & Le)")
    lr: float | None = Field(None, gt=0, le=10, description="Adam learning rate of the policy (default 0.05 for "
                             "independent, 0.005 for lstm)", json_schema_extra=flag("policy_lr"))
    momentum: float = Field(0.9, ge=0, lt=1, description="moving-average baseline momentum", json_schema_extra=flag("policy_momentum"))
    entropy: float = Field(1e-3, ge=0, le=10, description="entropy bonus weight", json_schema_extra=flag("policy_entropy"))
    hidden: int = Field(32, ge=1, le=4096, description="LSTM controller width", json_schema_extra=flag("controller_hidden"))


class Reinforce(Strategy):
    name = "reinforce"
    Options = ReinforceOptions

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        controller: str = "independent",
        lr: float | None = None,
        momentum: float = 0.9,
        entropy: float = 1e-3,
        hidden: int = 32,
    ):
        super().__init__(space, seed)
        if controller not in ("independent", "lstm"):
            raise ValueError(f"controller must be 'independent' or 'lstm', got {controller!r}")
        lr = lr if lr is not None else (0.05 if controller == "independent" else 0.005)
        if lr <= 0 or not 0 <= momentum < 1 or entropy < 0 or hidden < 1:
            raise ValueError("need lr > 0, 0 <= momentum < 1, entropy >= 0, hidden >= 1")
        self.sizes = decision_sizes(space, self.name)
        self.controller, self.momentum, self.entropy = controller, momentum, entropy
        self.lr = lr
        self.policy: _Independent | _LSTMController = (
            _Independent(self.sizes, lr) if controller == "independent"
            else _LSTMController(self.sizes, hidden, torch.Generator().manual_seed(seed), lr)
        )
        self.baseline = _EMA(momentum)
        self.scale = _EMA(momentum)
        self.updates = 0
        # The choices each candidate still out was sampled with, kept in the state: where decoding
        # repairs (the layers space), the genome's own encoding is another choice vector, and the
        # policy gradient of a resumed study must follow the choices actually drawn.
        self.out: dict[Genome, list[int]] = {}

    def ask(self) -> Candidate:
        choices = self.policy.sample(self.rng)
        genome = self.space.decode(choices)
        self.out[genome] = choices
        return Candidate(genome, operator=f"reinforce:{self.controller}", info={"choices": choices})

    def tell(self, trial: int, candidate: Candidate, observation: Observation) -> None:
        reward = observation.reward
        drawn = self.out.pop(candidate.genome, None)
        if reward is None:
            return  # a failed evaluation says nothing about the policy's choices
        baseline = self.baseline.value
        advantage = 0.0 if baseline is None else reward - baseline
        self.baseline.update(reward)
        self.scale.update(abs(advantage))
        scale = self.scale.value or 0.0
        if scale > 0:
            advantage /= scale
        # A decision that did not occur in the genome (it depends on another's value) is not learnt from.
        choices = candidate.info.get("choices") or drawn or choices_of(self.space, candidate)
        self.policy.update(choices, advantage, self.entropy, self.space.occurred(candidate.genome))
        self.updates += 1

    def probabilities(self) -> list[list[float]]:
        """Marginal choice probabilities of the independent policy (for inspection and tests)."""
        if not isinstance(self.policy, _Independent):
            raise TypeError("marginal probabilities are defined for the independent controller only")
        probs = self.policy.probs()
        return [probs[i, :n].tolist() for i, n in enumerate(self.sizes)]

    def _state(self) -> dict[str, Any]:
        return {
            "policy": self.policy.state(),
            "baseline": [self.baseline.numerator, self.baseline.denominator],
            "scale": [self.scale.numerator, self.scale.denominator],
            "updates": self.updates,
            "out": [[self.space.to_json(genome), [int(c) for c in choices]] for genome, choices in self.out.items()],
        }

    def _load(self, state: dict[str, Any]) -> None:
        self.policy.load(state["policy"])
        self.baseline.numerator, self.baseline.denominator = state["baseline"]
        self.scale.numerator, self.scale.denominator = state["scale"]
        self.updates = int(state["updates"])
        self.out = {self.space.from_json(genome): [int(c) for c in choices] for genome, choices in state.get("out", [])}
