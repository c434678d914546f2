"""Drawing and varying layer genomes: random samples (blocks of conv / norm / act motifs, pools,
skips, an optional dense head, with a stem for large images), mutation (insert, delete, replace a
component, change one parameter or a searched hyper-parameter) and one-point crossover. Every
genome made here is repaired (shapes.py) before it is returned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .genome import Layer, LayerGenome
from .kinds import COMPONENTS, INSERT_WEIGHTS, conv_out
from .shapes import repair

if TYPE_CHECKING:
    from .space import LayerGraphSpace

# Sampled genomes of larger 2-D inputs begin by halving them down to this side (stem()).
STEM_SIDE = 16


def choice(rng: np.random.Generator, values: tuple[Any, ...]) -> Any:
    value = values[int(rng.integers(len(values)))]
    return value.item() if isinstance(value, np.generic) else value


def random_component(space: LayerGraphSpace, rng: np.random.Generator, kind: str | None = None) -> Layer:
    """A component of `kind` (by default one drawn by INSERT_WEIGHTS) with random legal parameters."""
    if kind is None:
        kinds, weights = zip(*INSERT_WEIGHTS.items())
        kind = kinds[int(rng.choice(len(kinds), p=np.array(weights) / sum(weights)))]
    params = {name: choice(rng, values) for name, values in space.domains[kind].items()}
    adjust = COMPONENTS[kind].adjust_draw
    if adjust is not None:
        adjust(params, rng)
    return Layer.of(kind, **params)


def stem(space: LayerGraphSpace, act: str) -> list[Layer]:
    """Early downsampling of large images: a sampled genome of a 2-D input wider than STEM_SIDE
    starts with stride-2 convolutions (narrow: the map is large there) until it is no wider. The
    blocks drawn after it then work on maps of the size they suit (on 28x28 digits, random
    full-resolution nets took minutes per trial and most scored under 60%). Draws nothing from
    the generator, so samples of smaller inputs are what they were."""
    if space.ndim != 2 or not space.options.stem:
        return []
    o = space.options
    kernel = 3 if 3 in o.kernels else min(o.kernels)
    channels = min((c for c in o.channels if c >= 16), default=max(o.channels))
    layers, side = [], min(space.input_shape[1:])
    while side > STEM_SIDE:
        layers += [Layer.of("conv", kernel=kernel, channels=channels, stride=2), Layer.of("norm"), Layer.of("act", fn=act)]
        side = conv_out(side, kernel, 2)
    return layers


def sample(space: LayerGraphSpace, rng: np.random.Generator) -> LayerGenome:
    o = space.options
    act = choice(rng, o.activations)
    layers: list[Layer] = stem(space, act)
    for _ in range(int(rng.integers(o.min_blocks, o.max_blocks + 1))):
        if rng.random() < 0.75:
            if rng.random() < 0.2:
                block = [random_component(space, rng, "multiscale")]
            else:
                block = [Layer.of("conv", kernel=choice(rng, o.kernels), channels=choice(rng, o.channels), stride=1)]
            if rng.random() < 0.7:
                block.append(Layer.of("norm"))
            block.append(Layer.of("act", fn=act))
            if layers and rng.random() < 0.35 and len(block) <= o.max_skip_span:
                block.append(Layer.of("skip", span=len(block)))
        else:
            block = [random_component(space, rng, "pool")]
        if rng.random() < 0.1:
            block.append(random_component(space, rng, "dropout"))
        layers += block
    if rng.random() < 0.3:
        layers += [random_component(space, rng, "dense"), Layer.of("act", fn=act)]
        if rng.random() < 0.5:
            layers.append(random_component(space, rng, "dropout"))
    hparams = tuple(sorted((name, choice(rng, values)) for name, values in o.hparams))
    return repair(space, LayerGenome(tuple(layers), hparams))


def vary(space: LayerGraphSpace, genome: LayerGenome, op: str, rng: np.random.Generator) -> tuple[LayerGenome, str] | None:
    varied = vary_layers(space, genome, op, rng)
    if varied is None:
        return None
    return LayerGenome(tuple(varied[0]), genome.hparams), varied[1]


def vary_hparam(space: LayerGraphSpace, genome: LayerGenome, rng: np.random.Generator) -> tuple[LayerGenome, str] | None:
    tunable = [(name, values) for name, values in space.options.hparams if len(values) > 1]
    if not tunable:
        return None
    name, values = tunable[int(rng.integers(len(tunable)))]
    current = dict(genome.hparams)
    current[name] = choice(rng, tuple(v for v in values if v != current.get(name)))
    return LayerGenome(genome.layers, tuple(sorted(current.items()))), f"change:hp.{name}"


def vary_layers(space: LayerGraphSpace, genome: LayerGenome, op: str, rng: np.random.Generator) -> tuple[list[Layer], str] | None:
    layers = list(genome.layers)
    if op == "insert":
        if len(layers) >= space.options.max_layers:
            return None
        new = random_component(space, rng)
        at = int(rng.integers(len(layers) + 1))
        # A skip whose span reached back over the insertion point must reach one further, or the
        # inherited function would change beyond the new layer itself.
        for j in range(at, len(layers)):
            layer = layers[j]
            if layer.kind == "skip" and j - layer["span"] < at and layer["span"] < space.options.max_skip_span:
                layers[j] = layer.replace(span=layer["span"] + 1)
        layers.insert(at, new)
        return layers, f"insert:{new.kind}"
    if not layers:
        return None
    i = int(rng.integers(len(layers)))
    if op == "delete":
        kind = layers.pop(i).kind
        # Skips that reached back past the deleted component keep their source point.
        for j in range(i, len(layers)):
            layer = layers[j]
            if layer.kind == "skip" and j + 1 - layer["span"] <= i and layer["span"] > 1:
                layers[j] = layer.replace(span=layer["span"] - 1)
        return layers, f"delete:{kind}"
    if op == "replace":
        new = random_component(space, rng)
        if new.kind == layers[i].kind:
            return None
        layers[i] = new
        return layers, f"replace:{new.kind}"
    # change_param: one parameter of one component takes a different legal value.
    tunable = [j for j, layer in enumerate(layers) if any(len(v) > 1 for v in space.domains[layer.kind].values())]
    if not tunable:
        return None
    j = tunable[int(rng.integers(len(tunable)))]
    layer = layers[j]
    names = [n for n, v in space.domains[layer.kind].items() if len(v) > 1]
    name = names[int(rng.integers(len(names)))]
    choices = tuple(v for v in space.domains[layer.kind][name] if v != layer[name])
    layers[j] = layer.replace(**{name: choice(rng, choices)})
    return layers, f"change:{layer.kind}.{name}"


def mutate(space: LayerGraphSpace, genome: LayerGenome, rng: np.random.Generator) -> tuple[LayerGenome, str]:
    ops = ("insert", "delete", "replace", "change") + (("hparam",) if space.options.hparams else ())
    for _ in range(50):
        op = ops[int(rng.integers(len(ops)))]
        varied = vary_hparam(space, genome, rng) if op == "hparam" else vary(space, genome, op, rng)
        if varied is None:
            continue
        child = repair(space, varied[0])
        if child != genome:
            return child, varied[1]
    # A genome no operator can change (e.g. max_layers=1 with a fixed-value component).
    return sample(space, rng), "resample"


def crossover(space: LayerGraphSpace, a: LayerGenome, b: LayerGenome, rng: np.random.Generator) -> LayerGenome:
    """One-point crossover: a prefix of `a` joined to a suffix of `b`."""
    i = int(rng.integers(len(a) + 1))
    j = int(rng.integers(len(b) + 1))
    hb = dict(b.hparams)
    hparams = tuple((k, v if rng.random() < 0.5 or k not in hb else hb[k]) for k, v in a.hparams)
    return repair(space, LayerGenome(a.layers[:i] + b.layers[j:], hparams))
