"""Model functions (define-by-run search spaces) that the tests search, good and broken ones.

They live in an importable module, as a user's would, so that pool workers and fresh processes
(resume, load) find them by their module and name. All are for scikit-learn's digits (1x8x8, 10 classes).
"""

from __future__ import annotations

import random

from torch import nn

import nasforge


class Block(nn.Module):
    def __init__(self, width: int, kernel: int, residual: bool):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, kernel, padding=kernel // 2), nn.BatchNorm2d(width), nn.ReLU())
        self.residual = residual

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


def tiny_resnet(c: nasforge.Choices) -> nn.Module:
    """Blocks' decisions exist only up to the depth chosen; the head's dropout only when asked for."""
    width = c.choice("width", [4, 8])
    blocks = [Block(width, c.choice(f"kernel{i}", [1, 3]), c.choice(f"block{i}", ["plain", "residual"]) == "residual")
              for i in range(c.int("depth", 1, 3))]
    head = [nn.Dropout(c.float("dropout", 0.1, 0.5, step=0.2))] if c.bool("head_dropout") else []
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), *blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), *head,
                         nn.Linear(width, 10))


def op_cells(c: nasforge.Choices) -> nn.Module:
    """Every decision a choice among modules (c.module): the family has a supernet (weight sharing)."""
    layers: list[nn.Module] = [nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()]
    for i in range(2):
        layers.append(c.module(f"op{i}", {"conv3": lambda: nn.Conv2d(8, 8, 3, padding=1),
                                          "conv5": lambda: nn.Conv2d(8, 8, 5, padding=2), "skip": nn.Identity}))
        layers += [nn.BatchNorm2d(8), nn.ReLU()]
    layers.append(c.module("pool", [lambda: nn.AdaptiveAvgPool2d(1), lambda: nn.AdaptiveMaxPool2d(1)]))  # by position
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(8, 10))


def mlp(c: nasforge.Choices) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    width = 64
    for i in range(c.int("layers", 1, 2)):
        units = c.choice(f"units{i}", [8, 16])
        layers += [nn.Linear(width, units), c.module(f"act{i}", {"relu": nn.ReLU, "tanh": nn.Tanh})]
        width = units
    return nn.Sequential(*layers, nn.Linear(width, 10))


def same_name_other_options(c: nasforge.Choices) -> nn.Module:
    depth = c.int("depth", 1, 2)
    kernel = c.choice("kernel", [1, 3] if depth == 1 else [3, 5])  # one name, two option lists
    return nn.Sequential(nn.Conv2d(1, 4, kernel, padding=kernel // 2), nn.Flatten(), nn.LazyLinear(10))


def not_deterministic(c: nasforge.Choices) -> nn.Module:
    width = c.choice("width", [4, 8])
    if random.random() < 0.5:  # a decision that depends on something other than the decisions
        width *= c.int("factor", 1, 2)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))


def always_raises(c: nasforge.Choices) -> nn.Module:
    c.choice("width", [4, 8])
    raise ValueError("this family needs a GPU kernel that is not installed")


def raises_when_wide(c: nasforge.Choices) -> nn.Module:
    width = c.choice("width", [4, 8, 16])
    if width == 16:
        raise ValueError("width 16 is not supported by this family yet")
    return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))


class MLPSpace(nasforge.SearchSpace):
    """A space written by hand, the way before model functions: one hidden layer whose width is the genome."""

    name = "small-mlp"

    def __init__(self, input_shape: tuple[int, ...], units: tuple[int, ...] = (16, 32)):
        self.input_shape, self.units = tuple(input_shape), tuple(units)

    def sample(self, rng):
        return (int(self.units[rng.integers(len(self.units))]),)

    def mutate(self, genome, rng):
        return self.sample(rng), "resample"

    def crossover(self, a, b, rng):
        return a

    def build(self, genome):
        inputs = 1
        for n in self.input_shape:
            inputs *= n
        return nn.Sequential(nn.Flatten(), nn.Linear(inputs, genome[0]), nn.ReLU(), nn.Linear(genome[0], 10))

    def to_json(self, genome):
        return list(genome)

    def from_json(self, data):
        return tuple(int(v) for v in data)

    def config(self):
        return {"input_shape": list(self.input_shape), "units": list(self.units)}

    def decisions(self):
        return [len(self.units)]

    def encode(self, genome):
        return [self.units.index(genome[0])]

    def decode(self, choices):
        return (self.units[choices[0]],)
