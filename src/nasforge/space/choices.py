"""The decisions a define-by-run model function asks for, and the genome they make.

The user writes `def make_model(c: nasforge.Choices) -> nn.Module` and asks for each open decision
where it is used (`c.choice("width", [16, 32])`, `c.int("depth", 1, 4)`, ...). One run of the
function with a `Choices` records the decisions it asked and the value each got: that name -> value
mapping is the genome (`ChoiceGenome`). Who decides the values (a random draw, a recorded genome
replayed, a mutation) is a `Chooser`; the space in function.py derives everything else from it.

A decision is identified by its name: one name always means the same options (asking it again in
another run, or twice in one run, with other options is a `DefinitionError`), and asking the same
name twice in one run returns the same value. Values are JSON data; the function always gets back
its own option objects (a tuple option comes back as that tuple, not as the JSON list).
"""

from __future__ import annotations

import builtins
import contextlib
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

# c.int / c.float refuse ranges with more options than this: a categorical decision over a
# million values is a mistake (a step was forgotten), not a search space.
MAX_OPTIONS = 10_000
# Values of a c.float without a step: a grid of this many points from low to high.
FLOAT_GRID = 10


class DefinitionError(ConfigError):
    """The model function defines its decisions inconsistently: a name asked with two option
    lists, options that are not JSON data, the same values giving other decisions (not
    deterministic). The message names the decision and the fix."""


def canonical(value: Any) -> str:
    """The JSON text that identifies a value (dict keys sorted, no spaces): tuples and lists, or
    1 and 1.0, written alike are the same option."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True)
class Decision:
    """One open decision: its name, what asked it (choice, int, float, bool, module) and its options
    as JSON values, in order (an option's index is its encoding)."""

    name: str
    kind: str
    options: tuple[Any, ...]
    keys: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", tuple(canonical(o) for o in self.options))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Decision) and (self.name, self.kind, self.keys) == (other.name, other.kind, other.keys)

    def __hash__(self) -> int:
        return hash((self.name, self.kind, self.keys))

    @property
    def size(self) -> int:
        return len(self.options)

    def index(self, value: Any) -> int | None:
        """The position of `value` among the options, or None."""
        try:
            key = canonical(value)
        except (TypeError, ValueError):
            return None
        try:
            return self.keys.index(key)
        except ValueError:
            return None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "options": list(self.options)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Decision:
        return cls(str(data["name"]), str(data["kind"]), tuple(data["options"]))

    def describe_options(self) -> str:
        shown = ", ".join(json.dumps(o) for o in self.options[:8])
        return f"[{shown}{', ...' if self.size > 8 else ''}] ({self.kind})"


class ChoiceGenome(Mapping[str, Any]):
    """A define-by-run genome: the decisions one run of the model function asked, name -> JSON value,
    in the order they were asked. Immutable and hashable; equal when their canonical JSON is."""

    __slots__ = ("_canonical", "_values")

    def __init__(self, values: Mapping[str, Any] | Iterable[tuple[str, Any]] = ()):
        self._values = dict(values)
        self._canonical = canonical(self._values)

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __hash__(self) -> int:
        return hash(self._canonical)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ChoiceGenome):
            return self._canonical == other._canonical
        return NotImplemented

    def __repr__(self) -> str:
        return f"ChoiceGenome({self._values!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (ChoiceGenome, (self._values,))

    @property
    def canonical(self) -> str:
        return self._canonical

    def to_json(self) -> dict[str, Any]:
        return dict(self._values)


# A chooser gets the decision being asked and returns the index of the option to take.
Chooser = Callable[[Decision], int]


def _json_option(name: str, option: Any) -> Any:
    """The JSON form of one option (tuples become lists, numpy scalars plain numbers)."""
    if hasattr(option, "item") and callable(option.item) and not isinstance(option, (list, tuple, dict)):
        with contextlib.suppress(TypeError, ValueError):
            option = option.item()  # numpy / torch scalars
    try:
        return json.loads(canonical(option))
    except (TypeError, ValueError) as exc:
        raise DefinitionError(f"decision {name!r}: option {option!r} is not JSON data ({exc}); options must be numbers, "
                              "strings, booleans, None, or lists / dicts of those (use c.module for modules)") from None


class Choices:
    """What the model function asks its open decisions from. Each method records one decision and
    returns the value it got in this run:

        width = c.choice("width", [16, 32, 64])
        depth = c.int("depth", 1, 4)            # 1, 2, 3 or 4
        lr = c.float("dropout", 0.0, 0.5, step=0.1)
        residual = c.bool("residual")
        act = c.module("act", {"relu": nn.ReLU(), "gelu": nn.GELU()})

    Decisions may be asked anywhere, in loops and branches: a decision asked only under an earlier
    one (`kernel3` when depth is 4) appears and disappears with it."""

    def __init__(self, chooser: Chooser, known: dict[str, Decision] | None = None):
        self._chooser = chooser
        # Decisions seen so far (by the space, across runs): a name must keep its options.
        self._known = known if known is not None else {}
        self._taken: dict[str, tuple[Decision, int]] = {}

    # -- what the user calls ----------------------------------------------------------------------
    def choice(self, name: str, options: Sequence[Any]) -> Any:
        """One of `options` (any JSON values: numbers, strings, booleans, lists of those)."""
        if isinstance(options, (str, bytes, Mapping)) or not hasattr(options, "__iter__"):
            raise DefinitionError(f"decision {name!r}: options must be a list of values, got {type(options).__name__}")
        values = list(options)
        decision = Decision(_name(name), "choice", tuple(_json_option(name, o) for o in values))
        return values[self._decide(decision)]

    def int(self, name: str, low: int, high: int, step: int = 1) -> int:
        """An integer from `low` to `high`, both included, in steps of `step`."""
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high, step)):
            raise DefinitionError(f"decision {name!r}: c.int needs integer low, high and step, got {low!r}, {high!r}, {step!r}")
        if step < 1 or high < low:
            raise DefinitionError(f"decision {name!r}: c.int needs low <= high and step >= 1, got {low}, {high}, step {step}")
        values = range(low, high + 1, step)
        _check_count(name, len(values))
        decision = Decision(_name(name), "int", tuple(values))
        return values[self._decide(decision)]

    def float(self, name: str, low: float, high: float, step: float | None = None, log: bool = False) -> float:
        """A float from a grid between `low` and `high` (both included): every `step`, or else
        10 points, evenly spaced (or, with `log`, evenly spaced in log scale)."""
        if not (math.isfinite(low) and math.isfinite(high)) or high < low:
            raise DefinitionError(f"decision {name!r}: c.float needs finite low <= high, got {low!r}, {high!r}")
        if step is not None:
            if log or step <= 0:
                raise DefinitionError(f"decision {name!r}: c.float takes a positive step, or log=True without a step")
            count = math.floor((high - low) / step + 1e-9) + 1
            _check_count(name, count)
            values = [low + i * step for i in range(count)]
        elif log:
            if low <= 0:
                raise DefinitionError(f"decision {name!r}: c.float(log=True) needs low > 0, got {low!r}")
            values = [low * (high / low) ** (i / (FLOAT_GRID - 1)) for i in range(FLOAT_GRID)] if high > low else [low]
        else:
            values = [low + (high - low) * i / (FLOAT_GRID - 1) for i in range(FLOAT_GRID)] if high > low else [low]
        # Rounded to 12 significant digits: 0.1 * 3 is stored (and compared) as 0.3.
        grid = tuple(dict.fromkeys(float(f"{v:.12g}") for v in values))
        decision = Decision(_name(name), "float", grid)
        return grid[self._decide(decision)]

    def bool(self, name: str) -> bool:
        """False or True."""
        return bool(self._decide(Decision(_name(name), "bool", (False, True))))

    def module(self, name: str, modules: Mapping[str, Any] | Sequence[Any]) -> Any:
        """One of several modules (or zero-argument callables that make one), by key: the decision's
        options are the keys (the positions, for a list). Only the chosen callable is called."""
        keys: list[Any]
        if isinstance(modules, Mapping):
            keys, values = list(modules), list(modules.values())
            if not all(isinstance(k, str) for k in keys):
                raise DefinitionError(f"decision {name!r}: c.module's keys must be strings, got {keys!r}")
        else:
            values = list(modules)
            keys = list(range(len(values)))
        decision = Decision(_name(name), "module", tuple(keys))
        chosen = values[self._decide(decision)]
        from torch import nn

        if not isinstance(chosen, nn.Module) and callable(chosen):
            chosen = chosen()
        return chosen

    # -- recording --------------------------------------------------------------------------------
    def _decide(self, decision: Decision) -> builtins.int:  # builtins: `int` here is the method above
        if decision.size == 0:
            raise DefinitionError(f"decision {decision.name!r} has no options")
        taken = self._taken.get(decision.name)
        if taken is not None:
            if taken[0] != decision:
                raise DefinitionError(_conflict(decision, taken[0], "earlier in the same run"))
            return taken[1]  # asked again in one run: the same answer
        known = self._known.get(decision.name)
        if known is not None and known != decision:
            raise DefinitionError(_conflict(decision, known, "before"))
        index = int(self._chooser(decision))
        if not 0 <= index < decision.size:
            raise IndexError(f"chooser returned option {index} of {decision.size} for {decision.name!r}")
        self._taken[decision.name] = (decision, index)
        self._known.setdefault(decision.name, decision)
        return index

    @property
    def asked(self) -> list[Decision]:
        """The decisions of this run, in the order first asked."""
        return [d for d, _ in self._taken.values()]

    def genome(self) -> ChoiceGenome:
        """The decisions of this run as a genome (name -> JSON value, in the order asked)."""
        return ChoiceGenome((name, d.options[i]) for name, (d, i) in self._taken.items())

    def indices(self) -> dict[str, builtins.int]:
        return {name: i for name, (_, i) in self._taken.items()}


def _name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise DefinitionError(f"a decision's name must be a non-empty string, got {name!r}")
    return name


def _check_count(name: str, count: int) -> None:
    if count > MAX_OPTIONS:
        raise DefinitionError(f"decision {name!r} has {count} options (more than {MAX_OPTIONS}); give a larger step")


def _conflict(new: Decision, old: Decision, when: str) -> str:
    return (f"decision {new.name!r} is asked with options {new.describe_options()} but was asked {when} with "
            f"{old.describe_options()}; one name must always mean the same options (give the other decision "
            "its own name, e.g. with the loop index in it)")
