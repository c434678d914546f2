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

Recording runs (sample, mutate, crossover, decode) build the network on PyTorch's meta device: the
modules are made, no memory is allocated and no weights are initialised, so a recording costs a
fraction of a real build (benchmarks/define_by_run.py). A function that cannot run on meta tensors
(it reads a tensor's values) is run on the CPU instead, from then on.

Which decisions exist is found by running the function, so the list of decisions is fixed once, at
construction, by an exploration pass (`explore`): a few random samples, then, for every decision
found, each of (up to 8 of) its options set in a genome where it occurs, repeated while new
decisions turn up. Every decision reachable by changing one decision of a sampled genome is found;
the order is the function's own (a new decision goes right after the one asked before it). The
list is stored with the run (`config()`), so a resumed run, its workers and a later `load` use the
same list without exploring again, and a policy's shape never changes under it. Exploration also
checks the definition before any trial: each sample is replayed and must ask the same decisions
and build the same parameters (a function that draws its own random numbers is refused), and a
function that raises on every sample is an error naming its message. A decision that only shows up
later in a search still works for sampling, mutation and crossover; strategies that learn over the
fixed list simply do not see it (a warning says so).

A function that raises for some values is not an error of the search: the genome records the
decisions asked until it raised, and evaluating it fails the trial with the function's message.
Workers get the function by reference (its module and name), as pickle does; see `portability`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parameter import is_lazy

from ..errors import ConfigError, InvalidGenome
from ..registry import import_object
from .base import Genome, SearchSpace
from .choices import ChoiceGenome, Choices, Chooser, Decision, DefinitionError, canonical

log = logging.getLogger("nasforge")

EXPLORE_SEED = 0
EXPLORE_SAMPLES = 16  # random samples before the per-decision coverage passes
EXPLORE_OPTIONS = 8  # options of one decision tried per coverage pass (spread over its range)
EXPLORE_PASSES = 4
EXPLORE_RUNS = 1000  # the exploration stops here however many decisions keep turning up
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


def function_label(function: Any) -> str:
    name = getattr(function, "__name__", None) or type(function).__name__
    return f"{name} ({function_path(function)})"


def function_path(function: Any) -> str:
    """`module:qualname` of a function, whether or not it can be imported back."""
    module = getattr(function, "__module__", None) or "?"
    qualname = getattr(function, "__qualname__", None) or getattr(function, "__name__", None) or type(function).__qualname__
    return f"{module}:{qualname}"


def portability(function: Any) -> str | None:
    """Why `function` cannot be rebuilt in a worker process from its module and name, or None.

    Workers (pool, Ray) and later processes (resume, load) get the function by reference, as
    pickle sends any module-level function: never a copy of its code. A copy (cloudpickle) would
    also carry lambdas and closures, but it would silently freeze whatever the closure captured,
    could not be written into the run's record for a resume or a load in a new process, and is not
    a dependency. A script's own functions (`__main__`) are fine for the pool: multiprocessing
    imports the script again in each worker (which is why the script's search must sit under
    `if __name__ == '__main__':`), and Ray sends them by value."""
    qualname = getattr(function, "__qualname__", "") or ""
    module = getattr(function, "__module__", None)
    if "<lambda>" in qualname:
        return "it is a lambda"
    if "<locals>" in qualname:
        return "it is defined inside another function (a closure)"
    if not module:
        return "it has no module"
    if module == "__main__":
        main = sys.modules.get("__main__")
        if not getattr(main, "__file__", None):
            return "it was defined in an interactive session (a notebook or the REPL), which workers cannot import"
        found = getattr(main, qualname.split(".")[0], None)
    else:
        try:
            found = import_object(f"{module}:{qualname}")
        except (ImportError, AttributeError):
            return f"{module}:{qualname} cannot be imported"
    if qualname.count(".") == 0 and found is not function:
        return f"{module}:{qualname} names another object (is the function decorated or redefined?)"
    return None


def import_function(path: str, file: str | None = None) -> Callable[[Choices], nn.Module]:
    """The model function a run recorded as `module:qualname`; a ConfigError that says how to pass it
    where it cannot be imported here."""
    module, _, qualname = path.partition(":")
    how = ("pass the function itself: nasforge.load(EXPORT, space=make_model), nasforge.export_trial(RUN, OUT, "
           "space=make_model), nasforge.search(out=RUN, resume=True, space=make_model); on the command line, "
           "nasforge export RUN --space path/to/script.py:make_model")
    if module == "__main__":
        main = sys.modules.get("__main__")
        running = getattr(main, "__file__", None)
        if file and running and os.path.abspath(running) == os.path.abspath(file):  # that script is this process
            found: Any = main
            for part in qualname.split("."):
                found = getattr(found, part, None)
            if callable(found):
                return found
        where = f"the script {file}" if file else "an interactive session"
        raise ConfigError(f"the run's model function {path} was defined in {where}, which cannot be imported from here; "
                          f"{how}, or move it into an importable module")
    try:
        return import_object(path)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import the run's model function {path} ({type(exc).__name__}: {exc}); {how}, or make "
                          "its module importable (installed, or on PYTHONPATH)") from None


def _user_frame(exc: BaseException) -> str:
    """'file:line' of the deepest frame of the traceback outside nasforge and torch (the user's code)."""
    skip = (os.path.dirname(os.path.dirname(__file__)), os.path.dirname(torch.__file__))
    where = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        if not frame.filename.startswith(skip):
            where = f"{frame.filename}:{frame.lineno}"
    return where


class FunctionSpace(SearchSpace):
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

    def user_error(self, exc: BaseException) -> str:
        """The user's exception as one line: what raised it, its message and where."""
        where = _user_frame(exc)
        text = str(exc).strip().splitlines()[0][:500] if str(exc).strip() else ""
        return f"{self.label} raised {type(exc).__name__}" + (f": {text}" if text else "") + (f" (at {where})" if where else "")

    # -- the definition, checked and fixed once ------------------------------------------------------
    def explore(self, samples: int = EXPLORE_SAMPLES, max_runs: int = EXPLORE_RUNS) -> list[Decision]:
        """Find the function's decisions and fix their order (module docstring); check that it is
        deterministic and builds a network at all. Raises DefinitionError / ConfigError."""
        rng = np.random.default_rng(EXPLORE_SEED)
        order: list[str] = []
        example: dict[str, dict[str, int]] = {}  # decision -> a genome (indices) where it occurs
        successes, errors, runs = 0, [], 0

        def record(run: _Run, check: bool) -> bool:
            nonlocal successes, runs
            runs += 1
            names = [d.name for d in run.choices.asked]
            new = _merge_order(order, names)
            indices = run.choices.indices()
            for name in names:
                example.setdefault(name, indices)
            if run.error is None:
                successes += 1
            else:
                errors.append(run.error)
            if check or new:
                self._check_deterministic(run)
            return new

        for _ in range(samples):
            record(self._run(self._draw(rng)), check=True)
        for _ in range(EXPLORE_PASSES):
            found = False
            for name in list(order):
                d = self._known[name]
                for i in _spread(d.size, EXPLORE_OPTIONS):
                    if runs >= max_runs:
                        break
                    found |= record(self._run(self._chooser({**example[name], name: i}, self._draw(rng))), check=False)
            if not found or runs >= max_runs:
                break
        if successes == 0:
            first = errors[0] if errors else None
            why = self.user_error(first) if first is not None else "it raised"
            raise ConfigError(f"space: {self.label} built no network in {runs} tries: {why}")
        if not order:
            raise DefinitionError(f"space: {self.label} asks for no decisions (call c.choice / c.int / ... where the "
                                  "architecture is open), so there is nothing to search")
        if errors:
            log.warning("%s raised on %d of %d explored architectures (%s); those candidates will be failed trials",
                        self.label, len(errors), runs, self.user_error(errors[0]))
        self._order, self._fixed = order, set(order)
        return [self._known[n] for n in order]

    def _check_deterministic(self, run: _Run) -> None:
        genome = run.genome
        again = self._replay(genome, meta=self.meta)
        why = self._mismatch(genome, again)
        if why is None and (run.error is None) != (again.error is None):
            why = f"the decisions {_short(genome)} " + ("raised only the second time" if again.error else "raised only once")
        if why is None and run.model is not None and again.model is not None and _shapes(run.model) != _shapes(again.model):
            why = f"the decisions {_short(genome)} built networks with different parameters on two runs"
        if why is not None:
            raise DefinitionError(f"space: {self.label} is not deterministic: {why}. The same decision values must give "
                                  "the same decisions and the same network: draw no random numbers and read no changing "
                                  "state outside `c` (ask c for anything that varies)")

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

    def with_function(self, function: Callable[[Choices], nn.Module]) -> FunctionSpace:
        """This space (its fixed decisions) over another copy of the function: the one a user passes
        to `load` or a resume where the recorded module:qualname cannot be imported."""
        return FunctionSpace(function, decisions=[self._known[n] for n in self._order], meta=self.meta, file=self.file)

    def __reduce__(self) -> tuple[Any, ...]:
        why = portability(self.function)
        if why is not None:
            raise ConfigError(f"the model function {self.label} cannot be sent to worker processes: {why}. Workers rebuild it "
                              "from its module and name: define it at the top level of a module (or of the script, whose "
                              "search must sit under `if __name__ == '__main__':`), or use the serial executor")
        return (_restore, (self.function, [self._known[n].to_json() for n in self._order], self.meta, self.file))

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


def _merge_order(order: list[str], asked: Sequence[str]) -> bool:
    """Insert the names of `asked` that `order` lacks, each right after the name asked before it
    (at the front when it was asked first). Returns whether anything was inserted."""
    inserted = False
    previous = None
    for name in asked:
        if name not in order:
            order.insert(order.index(previous) + 1 if previous is not None else 0, name)
            inserted = True
        previous = name
    return inserted


def _spread(size: int, most: int) -> list[int]:
    """Up to `most` option indices spread over 0..size-1, both ends included."""
    if size <= most:
        return list(range(size))
    return sorted({round(i * (size - 1) / (most - 1)) for i in range(most)})


def _shapes(model: nn.Module) -> list[tuple[str, tuple[int, ...] | None]]:
    """Parameter and buffer names and shapes (None for a lazy module's, known only after a forward pass)."""
    return [(k, None if is_lazy(v) else tuple(v.shape)) for k, v in model.state_dict().items()]


def _short(value: Any, limit: int = 200) -> str:
    try:
        text = canonical(dict(value)) if isinstance(value, Mapping) else repr(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


__all__ = ["FunctionSpace", "function_label", "function_path", "import_function", "portability"]
