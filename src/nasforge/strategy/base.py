"""The ask/tell contract every search strategy fulfils.

A strategy decides what to try next and learns from results; it never trains, stores or schedules.
Results may arrive in any order and several candidates may be out at once (parallel executors), so
`ask` may return None to mean "wait for a result first". `state_dict` must capture everything, RNG
included, so that a resumed study continues exactly where it stopped.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..space.base import Genome, SearchSpace


@dataclass(frozen=True)
class Candidate:
    genome: Genome
    parents: tuple[int, ...] = ()
    operator: str = "random"
    info: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Observation:
    """What an evaluation told about a candidate.

    `reward` is the scalar the search maximises (None: the evaluation failed); `metrics` holds every
    measure of the trial (validation metrics, cost measures), from which Pareto strategies read their
    objectives; `fidelity` is the epoch budget the reward was measured at (None where evaluation has
    no such notion, e.g. table look-ups)."""

    reward: float | None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    fidelity: int | None = None

    @property
    def failed(self) -> bool:
        return self.reward is None


@dataclass
class Member:
    """An evaluated candidate as strategies remember it."""

    trial: int
    genome: Genome
    reward: float


def flag(name: str) -> dict[str, Any]:
    """`json_schema_extra` of a config field whose command-line flag is not simply its own name
    (config.flags derives every flag from the schema; names must not collide across sections)."""
    return {"flag": name}


class StrategyOptions(BaseModel):
    """A strategy's options as a config file, the command line or `search(**options)` give them.

    A strategy declares its own as a subclass named `Options`, one described field per option: the
    config's validation, the CLI's flags and the docs' reference are all derived from it. The base
    accepts any keyword option, so a registered strategy without `Options` still gets what the user
    wrote under `strategy:` as keyword arguments."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str = Field(description="the strategy's registered name (or a module:Class import path)")


class FixedOptions(StrategyOptions):
    """Options of a strategy that declares all of them: anything else is an unknown field."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Strategy(ABC):
    name = "base"
    Options: ClassVar[type[StrategyOptions]] = StrategyOptions

    def __init__(self, space: SearchSpace, seed: int = 0):
        self.space = space
        self.rng = np.random.default_rng(seed)

    @abstractmethod
    def ask(self) -> Candidate | None:
        """The next candidate to evaluate, or None while the strategy waits for results."""

    @abstractmethod
    def tell(self, trial: int, candidate: Candidate, observation: Observation) -> None:
        """The result of a candidate (`observation.reward` is None when its evaluation failed)."""

    @classmethod
    def from_options(cls, space: SearchSpace, seed: int, options: StrategyOptions, objectives: Sequence[str] = ()) -> Strategy:
        """The strategy a config describes. Strategies that need more than their options (NSGA-II:
        the study's objectives) or that turn an option into an object (a selection operator) override it."""
        return cls(space, seed, **options.model_dump(exclude={"name"}, exclude_none=True))

    # -- persistence -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, **self._state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self._load(state)

    def _state(self) -> dict[str, Any]:  # noqa: B027 - optional hook, stateless strategies keep the default
        return {}

    def _load(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        return None

    def _dump_members(self, members: list[Member]) -> list[list[Any]]:
        return [[m.trial, self.space.to_json(m.genome), m.reward] for m in members]

    def _load_members(self, rows: list[list[Any]]) -> list[Member]:
        return [Member(int(t), self.space.from_json(g), float(r)) for t, g, r in rows]
