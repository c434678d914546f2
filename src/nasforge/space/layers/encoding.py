"""The layer space as categorical decisions (bounded depth), for strategies that learn over
choices: each of `decision_depth` slots is a kind decision (0 = empty slot, else the kind's code)
followed by one decision per parameter of every kind (a slot's decisions for other kinds are
ignored), and the searched training hyper-parameters after the slots."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...errors import InvalidGenome
from .genome import Layer, LayerGenome
from .kinds import KINDS
from .shapes import repair

if TYPE_CHECKING:
    from .space import LayerGraphSpace


def decision_depth(space: LayerGraphSpace) -> int:
    return min(space.options.max_layers, 4 * space.options.max_blocks)


def slot_params(space: LayerGraphSpace) -> list[tuple[str, str, tuple[Any, ...]]]:
    return [(kind, name, values) for kind in KINDS for name, values in space.domains[kind].items()]


def decisions_of(space: LayerGraphSpace) -> list[int]:
    slot = [len(KINDS) + 1] + [len(values) for _, _, values in slot_params(space)]
    # Searched training hyper-parameters are decisions too, after the layer slots.
    return slot * decision_depth(space) + [len(values) for _, values in space.options.hparams]


def encode(space: LayerGraphSpace, genome: LayerGenome) -> list[int]:
    depth, params = decision_depth(space), slot_params(space)
    if len(genome) > depth:
        raise InvalidGenome(f"{len(genome)} components exceed the decision depth {depth}")
    out: list[int] = []
    hparams = dict(genome.hparams)
    tail = [values.index(hparams[name]) if hparams.get(name) in values else 0 for name, values in space.options.hparams]
    for i in range(depth):
        if i >= len(genome):
            out += [0] * (1 + len(params))
            continue
        layer = genome.layers[i]
        out.append(KINDS.index(layer.kind) + 1)
        for kind, name, values in params:
            if kind != layer.kind:
                out.append(0)
            elif layer[name] not in values:
                raise InvalidGenome(f"component {i} ({kind}): {name}={layer[name]!r} outside the space")
            else:
                out.append(values.index(layer[name]))
    return out + tail


def decode(space: LayerGraphSpace, choices: Any) -> LayerGenome:
    sizes, params = decisions_of(space), slot_params(space)
    choices = [int(c) for c in choices]
    if len(choices) != len(sizes) or any(not 0 <= c < n for c, n in zip(choices, sizes)):
        raise InvalidGenome(f"expected {len(sizes)} choices within {sizes[: 1 + len(params)]} per slot")
    n_hp = len(space.options.hparams)
    hp_choices = choices[len(choices) - n_hp:] if n_hp else []
    choices = choices[: len(choices) - n_hp] if n_hp else choices
    hparams = tuple(sorted((name, values[c]) for (name, values), c in zip(space.options.hparams, hp_choices)))
    layers = []
    for start in range(0, len(choices), 1 + len(params)):
        kind_choice = choices[start]
        if kind_choice == 0:
            continue
        kind = KINDS[kind_choice - 1]
        values = {name: vals[choices[start + 1 + k]] for k, (knd, name, vals) in enumerate(params) if knd == kind}
        layers.append(Layer.of(kind, **values))
    return repair(space, LayerGenome(tuple(layers), hparams))
