"""The exploration pass that fixes a define-by-run space's list of decisions and checks its definition.

Which decisions a model function has is only known by running it, so a FunctionSpace runs it when it
is made (on the meta device, about 0.1 s for a small ResNet family): `EXPLORE_SAMPLES` random samples,
then, for every decision found, each of (up to `EXPLORE_OPTIONS` of) its options set in a genome where
it occurs, repeated while new decisions turn up. Every decision reachable by changing one decision of
a sampled genome is found. The order is the function's own: a new decision goes right after the one
asked before it (`width, depth, kernel0, block0, kernel1, ...`), which is the order an LSTM
controller steps through.

The pass also checks the definition before any trial: each sample (and each run that found a new
decision) is replayed and must ask the same decisions, raise alike and build the same parameters (a
function that draws its own random numbers is refused); a name asked with two option lists is an
error (choices.py); a function that raises on every sample, or asks for nothing, is an error naming
its message. A function that raises for some values only is a warning: those candidates fail as trials.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn
from torch.nn.parameter import is_lazy

from ..errors import ConfigError
from .choices import DefinitionError

if TYPE_CHECKING:
    from .function import FunctionSpace

log = logging.getLogger("nasforge")

EXPLORE_SEED = 0
EXPLORE_SAMPLES = 16  # random samples before the per-decision coverage passes
EXPLORE_OPTIONS = 8  # options of one decision tried per coverage pass (spread over its range)
EXPLORE_PASSES = 4
EXPLORE_RUNS = 1000  # the exploration stops here however many decisions keep turning up


def explore(space: FunctionSpace, samples: int = EXPLORE_SAMPLES, max_runs: int = EXPLORE_RUNS) -> list[str]:
    """The names of the function's decisions in order (module docstring); a DefinitionError or
    ConfigError where the definition is broken."""
    rng = np.random.default_rng(EXPLORE_SEED)
    order: list[str] = []
    example: dict[str, dict[str, int]] = {}  # decision -> a genome (indices) where it occurs
    successes, errors, runs = 0, [], 0

    def record(run: Any, check: bool) -> bool:
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
            check_deterministic(space, run)
        return new

    for _ in range(samples):
        record(space._run(space._draw(rng)), check=True)
    for _ in range(EXPLORE_PASSES):
        found = False
        for name in list(order):
            d = space._known[name]
            for i in _spread(d.size, EXPLORE_OPTIONS):
                if runs >= max_runs:
                    break
                found |= record(space._run(space._chooser({**example[name], name: i}, space._draw(rng))), check=False)
        if not found or runs >= max_runs:
            break
    if successes == 0:
        first = errors[0] if errors else None
        why = space.user_error(first) if first is not None else "it raised"
        raise ConfigError(f"space: {space.label} built no network in {runs} tries: {why}")
    if not order:
        raise DefinitionError(f"space: {space.label} asks for no decisions (call c.choice / c.int / ... where the "
                              "architecture is open), so there is nothing to search")
    if errors:
        log.warning("%s raised on %d of %d explored architectures (%s); those candidates will be failed trials",
                    space.label, len(errors), runs, space.user_error(errors[0]))
    return order


def check_deterministic(space: FunctionSpace, run: Any) -> None:
    """Replay a recorded run: it must ask the same decisions, raise alike and build the same parameters."""
    genome = run.genome
    again = space._replay(genome, meta=space.meta)
    why = space._mismatch(genome, again)
    if why is None and (run.error is None) != (again.error is None):
        why = f"the decisions {space.short(genome)} " + ("raised only the second time" if again.error else "raised only once")
    if why is None and run.model is not None and again.model is not None and _shapes(run.model) != _shapes(again.model):
        why = f"the decisions {space.short(genome)} built networks with different parameters on two runs"
    if why is not None:
        raise DefinitionError(f"space: {space.label} is not deterministic: {why}. The same decision values must give "
                              "the same decisions and the same network: draw no random numbers and read no changing "
                              "state outside `c` (ask c for anything that varies)")


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
