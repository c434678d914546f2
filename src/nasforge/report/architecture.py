"""A diagram of a network from its Plan: one box per step, arrows for every tensor that flows.

Drawn with matplotlib only (no graphviz binary). Steps keep their execution order top to bottom;
the main path (the chain the output depends on through first inputs) is the left column and side
branches (a skip's pooling / projection) the right one, so residual connections stand out as arcs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from ..space.plan import Add, Call, Concat, Plan, PlanNet

_COLORS = {
    "conv": "#9ecae1", "pool": "#a1d99b", "norm": "#d9d9d9", "act": "#fdd0a2", "linear": "#cbc9e2",
    "dropout": "#f0f0f0", "add": "#fff7a8", "input": "#ffffff", "other": "#e5f5e0",
}


@dataclass
class Node:
    key: str  # the register this node produces
    label: str
    kind: str
    inputs: tuple[str, ...]
    shape: tuple[int, ...] | None = None
    column: int = 0


def _kind(cls: str) -> str:
    if cls.startswith("Conv"):
        return "conv"
    if "Pool" in cls:
        return "pool"
    if cls.startswith("BatchNorm"):
        return "norm"
    if cls == "Linear":
        return "linear"
    if cls.startswith("Dropout"):
        return "dropout"
    if cls in ("ReLU", "GELU", "SiLU", "Tanh", "ELU", "LeakyReLU", "Sigmoid"):
        return "act"
    return "other"


def module_label(cls: str, kwargs: dict[str, Any]) -> str:
    """A compact description of one module: the arguments that tell a reader what it does."""
    k = kwargs
    if cls.startswith("Conv"):
        stride = f", s{k['stride']}" if k.get("stride", 1) != 1 else ""
        return f"{cls} {k['in_channels']}→{k['out_channels']}, k{k['kernel_size']}{stride}"
    if cls.startswith(("MaxPool", "AvgPool")):
        return f"{cls} k{k['kernel_size']}, s{k.get('stride', k['kernel_size'])}"
    if cls.startswith("AdaptiveAvgPool"):
        return f"{cls} → {k['output_size']}"
    if cls == "Linear":
        return f"Linear {k['in_features']}→{k['out_features']}"
    if cls.startswith("BatchNorm"):
        return f"{cls} ({k['num_features']})"
    if cls == "Dropout":
        return f"Dropout p={k['p']}"
    return cls


def _shapes(net: PlanNet, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """The shape (without batch) of every register, from one forward pass on a dummy input."""
    plan = net.plan
    env = {plan.input: torch.zeros((1, *input_shape))}
    was_training = net.training
    net.eval()
    with torch.no_grad():
        for step in plan.steps:
            if isinstance(step, Call):
                env[step.dst] = net.get_submodule(step.module)(env[step.src])
            elif isinstance(step, Concat):
                env[step.dst] = torch.cat([env[src] for src in step.srcs], dim=1)
            elif isinstance(step, Add):
                total = env[step.srcs[0]]
                for src in step.srcs[1:]:
                    total = total + env[src]
                env[step.dst] = total
            else:  # a step kind this diagram does not know yet: draw it without shapes rather than guess them
                break
    net.train(was_training)
    return {name: tuple(t.shape[1:]) for name, t in env.items()}


def plan_nodes(plan: Plan, shapes: dict[str, tuple[int, ...]] | None = None) -> list[Node]:
    """The input node then one node per step, in execution order, with their columns assigned."""
    shapes = shapes or {}
    nodes = [Node(plan.input, "input", "input", (), shapes.get(plan.input))]
    for step in plan.steps:
        if isinstance(step, Call):
            cls, kwargs = plan.modules[step.module]
            nodes.append(Node(step.dst, module_label(cls, kwargs), _kind(cls), (step.src,), shapes.get(step.dst)))
        else:  # a merge of several tensors; a step kind added to plan.py later draws under its class name
            label = {Add: "add  +", Concat: "concat (channels)"}.get(type(step), type(step).__name__)
            nodes.append(Node(step.dst, label, "add", tuple(step.srcs), shapes.get(step.dst)))
    producer = {n.key: n for n in nodes}
    main = set()
    key = plan.output
    while key in producer and key not in main:  # follow first inputs back from the output
        main.add(key)
        inputs = producer[key].inputs
        key = inputs[0] if inputs else ""
    for n in nodes:
        n.column = 0 if n.key in main else 1
    return nodes


def architecture_figure(net: PlanNet, input_shape: tuple[int, ...] | None = None, title: str = "") -> Figure:
    shapes = _shapes(net, input_shape) if input_shape else None
    nodes = plan_nodes(net.plan, shapes)
    row = {n.key: i for i, n in enumerate(nodes)}
    rows = len(nodes) + 1
    has_side = any(n.column for n in nodes)
    fig = Figure(figsize=(8.0 if has_side else 5.5, 0.5 * rows + 0.8))
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.96 - (0.5 / (0.5 * rows + 0.8) if title else 0)))
    ax.set_xlim(-0.25, 2.4 if has_side else 1.3)
    ax.set_ylim(rows - 0.4, -0.8)
    ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    width, height = 1.1, 0.66
    x_of = {0: 0.0, 1: 1.2}

    def center(n: Node) -> tuple[float, float]:
        return x_of[n.column] + width / 2, row[n.key]

    for n in nodes:
        x, y = x_of[n.column], row[n.key]
        ax.add_patch(FancyBboxPatch((x, y - height / 2), width, height, boxstyle="round,pad=0.02,rounding_size=0.08",
                                    facecolor=_COLORS[n.kind], edgecolor="#555555", linewidth=0.8))
        label = n.label + (f"\n{'×'.join(map(str, n.shape))}" if n.shape else "")
        ax.text(x + width / 2, y, label, ha="center", va="center", fontsize=7.5, linespacing=1.1)
    out_y = len(nodes)
    last = nodes[-1]
    ax.text(x_of[0] + width / 2, out_y, "output (logits)", ha="center", va="center", fontsize=7, style="italic")
    ax.add_patch(FancyArrowPatch((center(last)[0], out_y - 1 + height / 2), (x_of[0] + width / 2, out_y - 0.25),
                                 arrowstyle="-|>", mutation_scale=8, color="#333333", linewidth=0.8))
    producer = {n.key: n for n in nodes}
    for n in nodes:
        for src in n.inputs:
            if src not in producer:
                continue
            p = producer[src]
            (x0, y0), (x1, y1) = center(p), center(n)
            if p.column == n.column and y1 - y0 == 1:  # the next step: a straight short arrow
                start, end, style, color = (x0, y0 + height / 2), (x1, y1 - height / 2), "arc3", "#333333"
            elif p.column == n.column == 0:  # a residual reaching over several steps: arc on the left
                start, end = (x0 - width / 2, y0), (x1 - width / 2, y1)
                style = f"arc3,rad={min(0.6, 0.12 + 0.04 * (y1 - y0))}"
                color = "#333333" if src == n.inputs[0] else "#d62728"  # main path past a side branch vs a skip
            elif n.column > p.column:  # into a side branch: from the right edge down onto its top
                start, end, style, color = (x0 + width / 2, y0), (x1, y1 - height / 2), "arc3,rad=-0.2", "#d62728"
            else:  # out of a side branch: from its bottom onto the right edge of the main-path step
                start, end, style, color = (x0, y0 + height / 2), (x1 + width / 2, y1), "arc3,rad=-0.2", "#d62728"
            ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=8, connectionstyle=style,
                                         color=color, linewidth=0.9))
    return fig
