"""The component kinds of the layer-graph space, one record each: a new kind is added here alone.

A `ComponentKind` says everything the space does with a component of its kind:

- `domain(options)`: its parameters and their legal values (what sampling and mutation draw from,
  what a genome may hold, and the kind's decisions in the categorical encoding);
- `infer(layer, shape, i, points)`: the shape after it, or why it cannot apply there;
- `build(step)`: the modules and calls it adds to the network's Plan;
- `describe(params)`: its short text in a one-line summary of a genome;
- and optionally how it widens the receptive field, how a random draw of it is adjusted, and how
  `repair` fixes it where it cannot apply (by default it is dropped).

`code` is the kind's number in the categorical encoding (0 is an empty slot): encodings persist
in strategies' states, so a kind keeps its code and a new kind takes the next one. COMPONENTS is in
the order mutation draws kinds by `insert_weight`.

Shapes during inference: ("map", channels, (spatial dims...)) or ("vec", features).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..plan import Plan
    from .genome import Layer, LayerSpaceOptions

Shape = tuple
ACTIVATIONS = {"relu": "ReLU", "gelu": "GELU", "silu": "SiLU", "tanh": "Tanh", "elu": "ELU", "leaky_relu": "LeakyReLU"}


@dataclass
class BuildStep:
    """One component being added to a Plan: its index `i` (its modules are named l{i}...), the
    register `cur` holding the tensor before it and its shape `here`, the registers and shapes of
    every earlier point (for skips), and the number of spatial dimensions `d`."""

    plan: Plan
    layer: Layer
    i: int
    cur: str
    here: Shape
    points: list[str]
    point_shapes: list[Shape]
    d: int

    @property
    def name(self) -> str:
        return f"l{self.i}"

    def call(self, module: str) -> str:
        """The tensor through module `module` (already in the plan), as register h{i}."""
        return self.plan.call(module, self.cur, f"h{self.i}")


@dataclass(frozen=True)
class ComponentKind:
    name: str
    code: int
    domain: Callable[[LayerSpaceOptions], dict[str, tuple[Any, ...]]]
    infer: Callable[[Layer, Shape, int, list[Shape]], tuple[Shape, str | None]]
    build: Callable[[BuildStep], str]
    describe: Callable[[dict[str, Any]], str]
    # How often a mutation that inserts or replaces a component picks this kind.
    insert_weight: float
    # Only on feature maps, before the first dense layer.
    spatial_only: bool = False
    # (extent, stride) along the main path, for the receptive field; None: it does not widen it.
    receptive: Callable[[Layer], tuple[int, int]] | None = None
    # Changes a random draw of the parameters in place (after every parameter was drawn).
    adjust_draw: Callable[[dict[str, Any], np.random.Generator], None] | None = None
    # The component `repair` keeps where it cannot apply for `problem`; None (the default): dropped.
    repair: Callable[[Layer, str], Layer | None] | None = None


def conv_out(size: int, kernel: int, stride: int) -> int:
    return math.floor((size + 2 * (kernel // 2) - kernel) / stride) + 1


def pool_out(size: int, kernel: int) -> int:
    padding = kernel // 2 if kernel % 2 else 0
    return math.floor((size + 2 * padding - kernel) / 2) + 1


def _same(layer: Layer, cur: Shape, i: int, points: list[Shape]) -> tuple[Shape, str | None]:
    return cur, None


def _module(module: str, **kwargs: Any) -> Callable[[BuildStep], str]:
    """build() of a component that is one module of the plan's vocabulary, applied to the tensor."""

    def build(step: BuildStep) -> str:
        step.plan.module(step.name, module, **kwargs)
        return step.call(step.name)

    return build


# -- conv: a convolution (kernel, channels, stride), padded to keep the map size at stride 1 -------
def _conv_infer(layer: Layer, cur: Shape, i: int, points: list[Shape]) -> tuple[Shape, str | None]:
    stride = layer["stride"]
    if stride > 1 and min(cur[2]) < 2:
        return cur, "stride 2 on a feature map of size 1"
    return ("map", layer["channels"], tuple(conv_out(s, layer["kernel"], stride) for s in cur[2])), None


def _conv_build(step: BuildStep) -> str:
    k = step.layer["kernel"]
    step.plan.module(step.name, f"Conv{step.d}d", in_channels=step.here[1], out_channels=step.layer["channels"], kernel_size=k,
                     stride=step.layer["stride"], padding=k // 2)
    return step.call(step.name)


def _conv_draw(params: dict[str, Any], rng: np.random.Generator) -> None:
    params["stride"] = 1 if rng.random() < 0.8 else 2  # mostly full resolution


def _conv_repair(layer: Layer, problem: str) -> Layer | None:
    return layer.replace(stride=1) if layer["stride"] > 1 and problem.startswith("stride") else None


CONV = ComponentKind(
    "conv", 1, lambda o: {"kernel": o.kernels, "channels": o.channels, "stride": (1, 2)}, _conv_infer, _conv_build,
    lambda p: f"conv{p['kernel']}x{p['channels']}" + ("/2" if p["stride"] == 2 else ""), insert_weight=0.3,
    spatial_only=True, receptive=lambda layer: (layer["kernel"], layer["stride"]), adjust_draw=_conv_draw, repair=_conv_repair)


# -- pool: max or average pooling of stride 2 ------------------------------------------------------
def _pool_infer(layer: Layer, cur: Shape, i: int, points: list[Shape]) -> tuple[Shape, str | None]:
    dims = tuple(pool_out(s, layer["size"]) for s in cur[2])
    if min(cur[2]) < 2 or min(dims) < 1:
        return cur, f"pooling would shrink a {'x'.join(map(str, cur[2]))} feature map below 1"
    return ("map", cur[1], dims), None


def _pool_build(step: BuildStep) -> str:
    size = step.layer["size"]
    cls = "MaxPool" if step.layer["op"] == "max" else "AvgPool"
    step.plan.module(step.name, f"{cls}{step.d}d", kernel_size=size, stride=2, padding=size // 2 if size % 2 else 0)
    return step.call(step.name)


POOL = ComponentKind(
    "pool", 2, lambda o: {"op": ("max", "avg"), "size": (2, 3)}, _pool_infer, _pool_build,
    lambda p: f"{p['op']}pool{p['size']}", insert_weight=0.15, spatial_only=True,
    receptive=lambda layer: (layer["size"], 2))


# -- dense: a linear layer; the first one switches from maps to vectors (global average pooling) ----
def _dense_build(step: BuildStep) -> str:
    i, here, cur = step.i, step.here, step.cur
    if here[0] == "map":
        step.plan.module(f"gap{i}", f"AdaptiveAvgPool{step.d}d", output_size=1)
        step.plan.module(f"flat{i}", "Flatten")
        cur = step.plan.call(f"gap{i}", cur, f"g{i}")
        cur = step.plan.call(f"flat{i}", cur, f"f{i}")
        here = ("vec", here[1])
    step.plan.module(step.name, "Linear", in_features=here[1], out_features=step.layer["units"])
    return step.plan.call(step.name, cur, f"h{i}")


DENSE = ComponentKind(
    "dense", 3, lambda o: {"units": o.dense_units}, lambda layer, cur, i, points: (("vec", layer["units"]), None), _dense_build,
    lambda p: f"fc{p['units']}", insert_weight=0.1)

DROPOUT = ComponentKind(
    "dropout", 4, lambda o: {"rate": o.dropout_rates}, _same, lambda step: _module("Dropout", p=step.layer["rate"])(step),
    lambda p: f"drop{p['rate']}", insert_weight=0.08)

NORM = ComponentKind(
    "norm", 5, lambda o: {}, _same,
    lambda step: _module(f"BatchNorm{step.d if step.here[0] == 'map' else 1}d", num_features=step.here[1])(step),
    lambda p: "bn", insert_weight=0.1)

ACT = ComponentKind(
    "act", 6, lambda o: {"fn": o.activations}, _same, lambda step: _module(ACTIVATIONS[step.layer["fn"]])(step),
    lambda p: p["fn"], insert_weight=0.1)


# -- skip: adds the tensor from `span` components earlier (pooled and projected where shapes differ) --
def _skip_infer(layer: Layer, cur: Shape, i: int, points: list[Shape]) -> tuple[Shape, str | None]:
    src = points[max(0, i - layer["span"])]
    if i == 0:
        return cur, "skip at the very start has nothing to skip over"
    if src[0] != cur[0]:
        return cur, "skip across the feature-map/vector boundary"
    return cur, None


def _skip_build(step: BuildStep) -> str:
    plan, name, here, d, i = step.plan, step.name, step.here, step.d, step.i
    src_index = max(0, i - step.layer["span"])
    src, src_shape = step.points[src_index], step.point_shapes[src_index]
    if src_shape[0] == "map":
        if src_shape[2] != here[2]:
            plan.module(f"{name}_pool", f"AdaptiveAvgPool{d}d", output_size=tuple(here[2]) if d > 1 else here[2][0])
            src = plan.call(f"{name}_pool", src, f"s{i}a")
        if src_shape[1] != here[1]:
            plan.module(f"{name}_proj", f"Conv{d}d", in_channels=src_shape[1], out_channels=here[1], kernel_size=1)
            src = plan.call(f"{name}_proj", src, f"s{i}b")
    elif src_shape[1] != here[1]:
        plan.module(f"{name}_proj", "Linear", in_features=src_shape[1], out_features=here[1])
        src = plan.call(f"{name}_proj", src, f"s{i}b")
    return plan.add((step.cur, src), f"h{i}")


SKIP = ComponentKind(
    "skip", 7, lambda o: {"span": tuple(range(1, o.max_skip_span + 1))}, _skip_infer, _skip_build,
    lambda p: f"+skip{p['span']}", insert_weight=0.17)


# -- multiscale: parallel convolutions of several kernel sizes, `channels` each, concatenated ------
def _multiscale_build(step: BuildStep) -> str:
    branches = []
    for k in map(int, step.layer["kernels"].split("-")):
        step.plan.module(f"{step.name}_k{k}", f"Conv{step.d}d", in_channels=step.here[1], out_channels=step.layer["channels"],
                         kernel_size=k, padding=k // 2)
        branches.append(step.plan.call(f"{step.name}_k{k}", step.cur, f"h{step.i}k{k}"))
    return step.plan.concat(tuple(branches), f"h{step.i}")


MULTISCALE = ComponentKind(
    "multiscale", 8, lambda o: {"kernels": o.multiscale_kernels(), "channels": o.channels},
    lambda layer, cur, i, points: (("map", layer["channels"] * len(layer["kernels"].split("-")), cur[2]), None),
    _multiscale_build, lambda p: f"ms[{p['kernels']}]x{p['channels']}", insert_weight=0.1, spatial_only=True,
    receptive=lambda layer: (max(int(k) for k in layer["kernels"].split("-")), 1))

# Every kind, in the order mutation draws them (by insert_weight).
COMPONENTS: dict[str, ComponentKind] = {k.name: k for k in (CONV, NORM, ACT, POOL, SKIP, DROPOUT, DENSE, MULTISCALE)}
# The kinds by code: the order of the categorical encoding (space/layers/encoding.py).
KINDS = tuple(k.name for k in sorted(COMPONENTS.values(), key=lambda k: k.code))
assert [COMPONENTS[name].code for name in KINDS] == list(range(1, len(KINDS) + 1)), "kind codes must be 1..N"
INSERT_WEIGHTS = {name: kind.insert_weight for name, kind in COMPONENTS.items()}
SPATIAL_ONLY = {name for name, kind in COMPONENTS.items() if kind.spatial_only}
