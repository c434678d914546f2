"""A layer genome as a network: its Plan (plan.py), each component added by its kind's `build`
(kinds.py), then global pooling (on feature maps) and the linear head."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..plan import Plan
from .genome import LayerGenome
from .kinds import COMPONENTS, BuildStep, Shape
from .shapes import infer, validate

if TYPE_CHECKING:
    from .space import LayerGraphSpace


def plan(space: LayerGraphSpace, genome: LayerGenome) -> Plan:
    validate(space, genome)
    d = space.ndim
    net = Plan(input="x", output="logits")
    shapes = infer(space, genome)
    points = ["x"]  # register holding the tensor after each applied component
    point_shapes: list[Shape] = [("map", space.input_shape[0], space.input_shape[1:])]
    cur = "x"
    for i, (layer, (shape, _)) in enumerate(zip(genome.layers, shapes)):
        cur = COMPONENTS[layer.kind].build(BuildStep(net, layer, i, cur, point_shapes[-1], points, point_shapes, d))
        points.append(cur)
        point_shapes.append(shape if shape is not None else point_shapes[-1])  # (validated: every component applies)
    last = point_shapes[-1]
    if last[0] == "map":
        net.module("gap", f"AdaptiveAvgPool{d}d", output_size=1)
        net.module("flatten", "Flatten")
        cur = net.call("gap", cur, "pooled")
        cur = net.call("flatten", cur, "features")
    net.module("classifier", "Linear", in_features=last[1], out_features=space.num_classes)
    net.call("classifier", cur, "logits")
    return net
