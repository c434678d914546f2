"""A define-by-run search space: the user's own model function, searched with no further code.

    def make_model(c: nasforge.Choices) -> nn.Module:
        width = c.choice("width", [16, 32, 64])
        blocks = [Block(width, c.choice(f"kernel{i}", [3, 5, 7])) for i in range(c.int("depth", 1, 4))]
        return nn.Sequential(stem(width), *blocks, head(width, 10))

The genome is what one run of the function asked (choices.py). Everything a strategy needs is
derived by running the function again with another `Chooser`:

- sample: every decision drawn uniformly;
- mutate: one recorded decision changed to another of its options, the function run again; the
  decisions it then asks keep their values where they were recorded and are drawn where new (the
  operator is `mutate:NAME`);
- crossover: every decision from one parent or the other (coin flips), drawn where neither has it;
- decisions / encode / decode: the decisions as categorical choices in a fixed order. A decision
  that did not occur in a genome encodes as -1 (`occurred` says which did), gets no feature in
  `decision_features`, and no policy gradient (strategy/reinforce.py).

Recording runs (sample, mutate, crossover, decode) build the network on PyTorch's meta device:
the modules are made, but no memory is allocated and no weights are initialised (for the example's
small ResNet a recording costs 1.1 ms against 1.4 ms for a real build, and the bookkeeping 0.2-0.3
ms of it: benchmarks/performance/define_by_run.py). A function that cannot run on meta tensors (it
reads a tensor's values) is run on the CPU instead, from then on.

Which decisions exist is found by running the function, so the list of decisions is fixed once, at
construction, by an exploration pass that also checks the definition (explore.py). The list is
stored with the run (`config()`), so a resumed run, its workers and a later `load` use the same
list without exploring again, and a policy's shape never changes under it. A decision that only
shows up later in a search still works for sampling, mutation and crossover; strategies that learn
over the fixed list do not see it (a warning says so).

A function that raises for some values is not an error of the search: the genome records the
decisions asked until it raised, and evaluating it fails the trial with the function's message.
Workers get the function by reference (its module and name), as pickle does (portable.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, InvalidGenome
from .base import Genome, SearchSpace
from .choices import ChoiceGenome, Choices, Chooser, Decision, DefinitionError, canonical
from .explore import explore
from .portable import function_label, function_path, import_function, portability, user_frame

log = logging.getLogger("nasforge")

CANONICAL_CACHE = 1 << 16


class _ReplayMismatch(Exception):
    """Replaying a genome, the function asked a decision the genome lacks (not deterministic)."""

    def __init__(self, decision: Decision):
        super().__init__(decision.name)
        self.decision = decision


class _NotAnOption(Exception):
    def __init__(self, decision: Decision, value: Any):
        super().__init__(decision.name)
        self.decision, self.value = decision, value


@dataclass
class _Run:
    """One run of the model function: the decisions it asked, what it returned or raised."""

    choices: Choices
    model: nn.Module | None
    error: BaseException | None

    @property
    def genome(self) -> ChoiceGenome:
        return self.choices.genome()


class FunctionSpace(SearchSpace[Genome]):
    """The architectures a model function `f(c: Choices) -> nn.Module` builds (module docstring)."""

    name = "function"

    def __init__(self, function: Callable[[Choices], nn.Module], decisions: Sequence[Decision | Mapping[str, Any]] | None = None,
                 *, meta: bool = True, file: str | None = None):
        if not callable(function):
            raise ConfigError(f"space: a model function must be callable, got {type(function).__name__}")
        self.function = function
        self.path = function_path(function)
        self.label = function_label(function)
        main = sys.modules.get("__main__")
        self.file = file or (getattr(main, "__file__", None) if self.path.startswith("__main__:") else None)
        self.meta = meta  # recording runs build on the meta device (switched off if the function needs real tensors)
        self._known: dict[str, Decision] = {}  # every decision seen, by name (a name keeps its options)
        self._order: list[str] = []  # the fixed decisions (decisions(), encode, decode), in order
        self._fixed: set[str] = set()  # the same names as a set (looked up on every decision asked)
        self._late: set[str] = set()  # decisions first seen after the list was fixed (warned about once)
        self._canonical: dict[tuple[int, ...], tuple[int, ...]] = {}
        if decisions is None:
            self.explore()
        else:
            for item in decisions:
                d = item if isinstance(item, Decision) else Decision.from_json(item)
                self._known[d.name] = d
                self._order.append(d.name)
            self._fixed = set(self._order)

    # -- running the function -------------------------------------------------------------------
    def _run(self, chooser: Chooser, meta: bool | None = None) -> _Run:
        """Run the function once with `chooser` deciding. The user's exceptions are returned in the
        _Run (the decisions asked until then are its genome); definition errors propagate."""
        taken: dict[str, int] = {}

        def remembered(d: Decision) -> int:  # a retry off the meta device repeats these answers
            if d.name not in taken:
                taken[d.name] = chooser(d)
            return taken[d.name]

        use_meta = self.meta if meta is None else meta
        run = self._call(remembered, use_meta)
        if run.error is not None and use_meta and not isinstance(run.error, (_ReplayMismatch, _NotAnOption)):
            plain = self._call(remembered, False)
            if plain.error is None:
                log.info("%s cannot run on the meta device (%s); recording on the CPU from now on", self.label, run.error)
                self.meta = False
            return plain
        return run

    def _call(self, chooser: Chooser, meta: bool) -> _Run:
        c = Choices(chooser, self._known)
        try:
            with torch.device("meta") if meta else contextlib.nullcontext():
                model = self.function(c)
        except DefinitionError as exc:
            raise DefinitionError(f"{self.label}: {exc}") from None
        except Exception as exc:  # the user's code: recorded, reported with the trial
            return _Run(c, None, exc)
        if not isinstance(model, nn.Module):
            return _Run(c, None, TypeError(f"{self.label} returned {type(model).__name__}, not a torch.nn.Module"))
        for d in c.asked:
            if self._fixed and d.name not in self._fixed and d.name not in self._late:
                self._late.add(d.name)
                log.warning("%s asked decision %r, which the exploration did not find; sampling, mutation and crossover "
                            "use it, strategies that learn over decisions (reinforce, predictor, local) do not see it",
                            self.label, d.name)
        return _Run(c, model, None)

    def _indices(self, genome: Mapping[str, Any]) -> dict[str, int]:
        """name -> option index of every value in `genome` that is an option of a known decision."""
        out = {}
        for name, value in genome.items():
            d = self._known.get(name)
            i = d.index(value) if d is not None else None
            if i is not None:
                out[name] = i
        return out

    @staticmethod
    def _chooser(fixed: Mapping[str, int], missing: Chooser) -> Chooser:
        def choose(d: Decision) -> int:
            i = fixed.get(d.name)
            return i if i is not None and i < d.size else missing(d)
        return choose

    @staticmethod
    def _draw(rng: np.random.Generator) -> Chooser:
        return lambda d: int(rng.integers(d.size))

    def _replay(self, genome: Mapping[str, Any], meta: bool) -> _Run:
        """Run the function on exactly the decisions of `genome`; asking one it lacks is a mismatch."""
        def choose(d: Decision) -> int:
            if d.name not in genome:
                raise _ReplayMismatch(d)
            i = d.index(genome[d.name])
            if i is None:
                raise _NotAnOption(d, genome[d.name])
            return i
        return self._run(choose, meta)

    def _mismatch(self, genome: Mapping[str, Any], run: _Run) -> str | None:
        """Why a replay of `genome` differs from it (not deterministic, or not its genome), or None."""
        if isinstance(run.error, _ReplayMismatch):
            return (f"replaying the decisions {_short(genome)}, {self.label} asked for {run.error.decision.name!r}, which "
                    "they do not include")
        if isinstance(run.error, _NotAnOption):
            d = run.error.decision
            return f"decision {d.name!r} has the value {run.error.value!r}, which is not one of its options {d.describe_options()}"
        if run.error is None:
            unasked = [n for n in genome if n not in run.genome]
            if unasked:
                return f"replaying the decisions {_short(genome)}, {self.label} did not ask for {', '.join(map(repr, unasked))}"
        return None

    @staticmethod
    def short(value: Any) -> str:
        return _short(value)

    def user_error(self, exc: BaseException) -> str:
        """The user's exception as one line: what raised it, its message and where."""
        where = user_frame(exc)
        text = str(exc).strip().splitlines()[0][:500] if str(exc).strip() else ""
        return f"{self.label} raised {type(exc).__name__}" + (f": {text}" if text else "") + (f" (at {where})" if where else "")

    def explore(self) -> list[Decision]:
        """Find the function's decisions and fix their order; check that it is deterministic and builds a
        network at all (explore.py). Raises DefinitionError / ConfigError."""
        order = explore(self)
        self._order, self._fixed = order, set(order)
        return [self._known[n] for n in order]

    # -- SearchSpace ------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> ChoiceGenome:
        return self._run(self._draw(rng)).genome

    def mutate(self, genome: Genome, rng: np.random.Generator) -> tuple[ChoiceGenome, str]:
        genome = self._as_genome(genome)
        indices = self._indices(genome)
        names = [n for n in genome if n in indices and self._known[n].size > 1]
        if not names:  # nothing to change (a function that raised before its first decision)
            return self.sample(rng), "mutate:resample"
        name = names[int(rng.integers(len(names)))]
        size = self._known[name].size
        indices[name] = (indices[name] + 1 + int(rng.integers(size - 1))) % size
        return self._run(self._chooser(indices, self._draw(rng))).genome, f"mutate:{name}"

    def crossover(self, a: Genome, b: Genome, rng: np.random.Generator) -> ChoiceGenome:
        ia, ib = self._indices(self._as_genome(a)), self._indices(self._as_genome(b))

        def choose(d: Decision) -> int:
            in_a, in_b = d.name in ia and ia[d.name] < d.size, d.name in ib and ib[d.name] < d.size
            if in_a and in_b:
                return ia[d.name] if rng.random() < 0.5 else ib[d.name]
            if in_a or in_b:
                return ia[d.name] if in_a else ib[d.name]
            return int(rng.integers(d.size))

        return self._run(choose).genome

    def build(self, genome: Genome) -> nn.Module:
        genome = self._as_genome(genome)
        run = self._replay(genome, meta=False)
        why = self._mismatch(genome, run)
        if why is not None:
            raise InvalidGenome(f"{why}; the function must make the same decisions for the same values")
        if run.error is not None:
            raise InvalidGenome(self.user_error(run.error))
        assert run.model is not None
        return run.model

    def to_json(self, genome: Genome) -> dict[str, Any]:
        return self._as_genome(genome).to_json()

    def from_json(self, data: Any) -> ChoiceGenome:
        if isinstance(data, ChoiceGenome):
            return data
        if not isinstance(data, Mapping) or not all(isinstance(k, str) for k in data):
            raise InvalidGenome(f"a genome of {self.label} is a mapping of decision names to values, got {_short(data)}")
        for name, value in data.items():
            d = self._known.get(name)
            if d is not None and d.index(value) is None:
                raise InvalidGenome(f"decision {name!r} has the value {value!r}, which is not one of its options "
                                    f"{d.describe_options()}")
        try:
            return ChoiceGenome(data)
        except (TypeError, ValueError) as exc:
            raise InvalidGenome(f"a genome's values must be JSON data: {exc}") from None

    def _as_genome(self, genome: Any) -> ChoiceGenome:
        return genome if isinstance(genome, ChoiceGenome) else self.from_json(genome)

    def key(self, genome: Genome) -> str:
        return hashlib.sha1(self._as_genome(genome).canonical.encode()).hexdigest()

    def describe(self, genome: Genome) -> str:
        return " ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in self._as_genome(genome).items())

    def config(self) -> dict[str, Any]:
        out: dict[str, Any] = {"function": self.path, "decisions": [self._known[n].to_json() for n in self._order]}
        if self.file:
            out["file"] = self.file
        return out

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> FunctionSpace:
        if "function" not in config:
            raise ConfigError("space.function: the function space needs the module:qualname of a model function")
        function = import_function(config["function"], config.get("file"))
        return cls(function, decisions=config.get("decisions"), file=config.get("file"))

    def __reduce__(self) -> tuple[Any, ...]:
        why = portability(self.function)
        if why is not None:
            raise ConfigError(f"the model function {self.label} cannot be sent to worker processes: {why}. Workers rebuild it "
                              "from its module and name: define it at the top level of a module (or of the script, whose "
                              "search must sit under `if __name__ == '__main__':`), or use the serial executor")
        return (_restore, (self.function, [self._known[n].to_json() for n in self._order], self.meta, self.file))

    def supernet(self) -> nn.Module:
        """Weight sharing (evaluation: one-shot), where every decision is a c.module (supernet/function.py)."""
        from .supernet.function import function_space_supernet

        return function_space_supernet(self)

    # -- the space as categorical decisions ---------------------------------------------------------
    @property
    def decision_list(self) -> list[Decision]:
        return [self._known[n] for n in self._order]

    def decisions(self) -> list[int]:
        return [self._known[n].size for n in self._order]

    def encode(self, genome: Genome) -> list[int]:
        genome = self._as_genome(genome)
        out = []
        for name in self._order:
            if name not in genome:
                out.append(-1)
                continue
            i = self._known[name].index(genome[name])
            if i is None:
                raise InvalidGenome(f"decision {name!r} has the value {genome[name]!r}, not one of its options")
            out.append(i)
        return out

    def occurred(self, genome: Genome) -> list[bool]:
        genome = self._as_genome(genome)
        return [name in genome for name in self._order]

    def decode(self, choices: Sequence[int]) -> ChoiceGenome:
        choices = [int(c) for c in choices]
        if len(choices) != len(self._order):
            raise ValueError(f"decode needs {len(self._order)} choices, got {len(choices)}")
        fixed = {}
        for name, c in zip(self._order, choices):
            size = self._known[name].size
            if c >= size or c < -1:
                raise ValueError(f"choice {c} for decision {name!r} is out of range (it has {size} options; -1: absent)")
            if c >= 0:
                fixed[name] = c
        # A decision the choices leave open (-1, or found after the list was fixed) takes its first option.
        return self._run(self._chooser(fixed, lambda d: 0)).genome

    def decision_features(self, choices: np.ndarray) -> np.ndarray:
        """One-hot per decision that occurs in the genome the choices decode to; a decision that does
        not occur there (it depends on another's value) has all zeros, whatever its choice says."""
        rows = np.asarray(choices, dtype=np.int64)
        live = np.array([self._live(tuple(int(c) for c in row)) for row in rows], dtype=np.int64).reshape(len(rows), -1)
        sizes = self.decisions()
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        out = np.zeros((len(rows), int(sum(sizes))))
        r, d = np.nonzero(live >= 0)
        out[r, offsets[d] + live[r, d]] = 1.0
        return out

    def _live(self, row: tuple[int, ...]) -> tuple[int, ...]:
        """encode(decode(row)): the choices that matter, -1 where a decision does not occur."""
        found = self._canonical.get(row)
        if found is None:
            if len(self._canonical) >= CANONICAL_CACHE:
                self._canonical.clear()
            found = self._canonical[row] = tuple(self.encode(self.decode(row)))
        return found


def _restore(function: Callable[[Choices], nn.Module], decisions: list[dict[str, Any]], meta: bool,
             file: str | None) -> FunctionSpace:
    return FunctionSpace(function, decisions=decisions, meta=meta, file=file)


def _short(value: Any, limit: int = 200) -> str:
    try:
        text = canonical(dict(value)) if isinstance(value, Mapping) else repr(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


__all__ = ["FunctionSpace"]
