"""Shape inference over a layer genome, and what follows from it: why a genome cannot be built
(`problems`), the nearest one that can (`repair`), and its receptive field.

Every genome leaving the space has passed `repair`, which makes it buildable for the task:
components that cannot apply (a pool that would shrink a map below 1, a conv after the first
dense, a skip across the map/vector boundary) are dropped or neutralised.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...errors import InvalidGenome
from .genome import LayerGenome
from .kinds import COMPONENTS, Shape

if TYPE_CHECKING:
    from .space import LayerGraphSpace


def infer(space: LayerGraphSpace, genome: LayerGenome) -> list[tuple[Shape | None, str | None]]:
    """For each component: the shape after it (None when it cannot apply) and why not."""
    points: list[Shape] = [("map", space.input_shape[0], space.input_shape[1:])]
    out: list[tuple[Shape | None, str | None]] = []
    for i, layer in enumerate(genome.layers):
        cur = points[-1]
        kind = COMPONENTS[layer.kind]
        problem: str | None
        if kind.spatial_only and cur[0] != "map":
            new, problem = cur, f"{layer.kind} after the first dense layer"
        else:
            new, problem = kind.infer(layer, cur, i, points)
        # An inapplicable component is treated as identity so later indices stay aligned.
        points.append(new if problem is None else cur)
        out.append((new if problem is None else None, problem))
    return out


def receptive_field(space: LayerGraphSpace, genome: LayerGenome) -> int:
    """Along the main path, up to the first dense layer (kernels and pools are square, so one
    number serves every axis); a skip adds a shorter path and leaves it unchanged."""
    rf, jump = 1, 1
    for layer, (shape, problem) in zip(genome.layers, infer(space, genome)):
        if problem is not None or shape is None:
            continue  # not applied: identity
        if shape[0] != "map":
            break
        widens = COMPONENTS[layer.kind].receptive
        if widens is not None:
            extent, stride = widens(layer)
            rf += (extent - 1) * jump
            jump *= stride
    return rf


def problems(space: LayerGraphSpace, genome: LayerGenome) -> list[str]:
    """Why a genome cannot be built as it is (empty when it can)."""
    infos = infer(space, genome)
    found = [f"component {i} ({layer.kind}): {why}" for i, ((_, why), layer) in enumerate(zip(infos, genome.layers)) if why]
    if len(genome) > space.options.max_layers:
        found.append(f"{len(genome)} components exceed max_layers={space.options.max_layers}")
    for i, layer in enumerate(genome.layers):
        for name, value in layer.params:
            if value not in space.domains[layer.kind].get(name, ()):
                found.append(f"component {i} ({layer.kind}): {name}={value!r} outside the space")
    return found


def repair(space: LayerGraphSpace, genome: LayerGenome) -> LayerGenome:
    """The nearest buildable genome: drops or neutralises components that cannot apply."""
    layers = list(genome.layers[: space.options.max_layers])
    # One pass can expose new problems (a dropped layer moves skip sources), so iterate.
    for _ in range(len(layers) + 1):
        infos = infer(space, LayerGenome(tuple(layers)))
        bad, why = next(((i, why) for i, (_, why) in enumerate(infos) if why), (None, None))
        if bad is None or why is None:
            break
        fix = COMPONENTS[layers[bad].kind].repair
        fixed = fix(layers[bad], why) if fix is not None else None
        if fixed is not None:
            layers[bad] = fixed
        else:
            del layers[bad]
    return LayerGenome(tuple(layers), fix_hparams(space, genome.hparams))


def fix_hparams(space: LayerGraphSpace, hparams: tuple[tuple[str, Any], ...]) -> tuple[tuple[str, Any], ...]:
    """Exactly the space's hyper-parameters, each legal: unknown ones go, missing ones take the
    first listed value (so genomes made before the domains existed stay usable)."""
    given = dict(hparams)
    return tuple(sorted((name, given[name] if given.get(name) in values else values[0]) for name, values in space.options.hparams))


def validate(space: LayerGraphSpace, genome: LayerGenome) -> LayerGenome:
    found = problems(space, genome)
    if found:
        raise InvalidGenome("; ".join(found))
    return genome
