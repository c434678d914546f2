"""Supernets of define-by-run spaces: the user's own model function, run once in supernet mode.

A define-by-run space builds a network by calling a user function with a decision recorder `c`;
`c.module(label, {"conv3": ..., "conv5": ..., "skip": ...})` picks one module among named candidates
(each a module or a zero-argument callable that builds one). In ordinary mode the recorder records
the decision and returns only the chosen candidate, built (`build_candidate`); in supernet mode the
function gets a `SupernetRecorder`, whose `module` returns a MixedOp holding every candidate. The
function then builds the supernet through the very code that builds each architecture, so the
standalone network of a genome is the supernet with each MixedOp replaced by its chosen candidate,
its state_dict keys are the collapsed supernet keys, and `extract` is `space.build(genome)` plus
those weights.

Decisions that are not among modules (`c.choice`, `c.int`: a depth, a width) change the shape of
the network, which weights cannot be shared across without more machinery (slimmable layers); in
supernet mode they take the value given in `fixed`, or are refused with the decision's name. A
define-by-run space's own `supernet()` (`function_space_supernet`) therefore needs every decision
to be a `c.module`: a path must be a whole genome of the space the strategies search.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from torch import nn

from ...errors import InvalidGenome
from ..base import Genome, SearchSpace
from .base import Supernet
from .mixed import Candidate, MixedOp


class SupernetRecorder:
    """The decision recorder a model function gets while its supernet is built."""

    def __init__(self, fixed: Mapping[str, Any] | None = None):
        self.fixed = dict(fixed or {})
        self.labels: dict[str, tuple[str, ...]] = {}

    def module(self, label: str, candidates: Mapping[str, Candidate] | Sequence[Candidate]) -> MixedOp:
        """A MixedOp of every candidate; a list's candidates are named by their positions ("0", "1", ...)."""
        if not isinstance(candidates, Mapping):
            candidates = {str(i): c for i, c in enumerate(candidates)}
        names = tuple(candidates)
        if self.labels.setdefault(label, names) != names:
            raise InvalidGenome(f"choice {label!r} is asked twice with different candidates: {self.labels[label]} and {names}")
        return MixedOp(label, candidates)

    def _fixed(self, name: str) -> Any:
        if name not in self.fixed:
            raise InvalidGenome(f"decision {name!r} is not a choice among modules (c.module), so its candidates cannot share "
                                "weights; give it a fixed value for the supernet")
        return self.fixed[name]

    def choice(self, name: str, options: Any, *args: Any, **kwargs: Any) -> Any:
        return self._fixed(name)

    def int(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._fixed(name)

    def float(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._fixed(name)

    def bool(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._fixed(name)


class FunctionSupernet(Supernet):
    """A define-by-run space's supernet: `build(recorder)` is the space's model function (with the
    space's arguments bound); `path_of(genome)` gives the genome's module decisions (label -> name),
    by default the genome's own values of the supernet's labels (a genome that maps decision names to
    the chosen keys, or positions, as `c.module` records them)."""

    def __init__(self, space: SearchSpace, build: Callable[[SupernetRecorder], nn.Module],
                 path_of: Callable[[Genome], Mapping[str, str]] | None = None, fixed: Mapping[str, Any] | None = None):
        super().__init__(space)
        self.recorder = SupernetRecorder(fixed)
        self.body = build(self.recorder)
        if not isinstance(self.body, nn.Module):
            raise InvalidGenome(f"the model function returned {type(self.body).__name__}, not an nn.Module")
        self.path_of = path_of

    def path(self, genome: Genome) -> dict[str, str]:
        if self.path_of is not None:
            return dict(self.path_of(genome))
        values = cast(Mapping[str, Any], genome)  # a define-by-run genome maps decision names to values
        return {label: str(values[label]) for label in self.recorder.labels if label in values}

    def standalone_key(self, key: str) -> str:
        return key.removeprefix("body.")  # the user's model is the supernet's `body`

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.body(*args, **kwargs)


def function_space_supernet(space: Any) -> FunctionSupernet:
    """The supernet of a define-by-run space (space/function.py's FunctionSpace: its `function` and
    `decision_list`), or NotImplementedError naming the decisions that cannot share weights."""
    others = [d for d in space.decision_list if d.kind != "module"]
    if others:
        named = ", ".join(f"{d.name!r} (c.{d.kind})" for d in others[:5]) + (" ..." if len(others) > 5 else "")
        raise NotImplementedError(
            f"the model function {space.label} asks decisions that are not choices among modules: {named}; only c.module "
            "decisions share weights in a supernet. Ask them with c.module, or train every candidate (evaluation: train)")
    return FunctionSupernet(space, space.function)
