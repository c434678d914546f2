"""LayerGraphSpace: the layer-graph search space, its contract (space/base.py) met by the modules of
this package, each by its job: genome.py (the genome and the options), kinds.py (one record per
component kind), shapes.py (shape inference and repair), variation.py (sampling, mutation,
crossover), build.py (the network), encoding.py (categorical decisions)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import InvalidGenome
from ..base import SearchSpace
from ..plan import Plan, PlanNet
from .build import plan as plan_of
from .encoding import decision_depth, decisions_of, decode, encode, slot_params
from .genome import HPARAMS, Layer, LayerGenome, LayerSpaceOptions
from .kinds import COMPONENTS, KINDS, Shape
from .shapes import infer, problems, receptive_field, repair, validate
from .variation import crossover, mutate, sample, stem

# Weights of a component live in modules named l{i} and l{i}_{suffix} (a skip's projection and
# pooling); the classifier is mapped by name.
WEIGHT_SUFFIXES = ("", "_proj", "_pool")


class LayerGraphSpace(SearchSpace[LayerGenome]):
    name = "layers"

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, options: LayerSpaceOptions | None = None):
        if len(input_shape) not in (2, 3) or any(int(d) < 1 for d in input_shape):
            raise InvalidGenome(f"input shape must be (C, L) or (C, H, W) with positive sizes, got {tuple(input_shape)}")
        # The head's width: classes, multi-label labels, or regression targets (1 for one target).
        if num_classes < 1:
            raise InvalidGenome(f"need at least 1 output (classes, labels or targets), got {num_classes}")
        self.input_shape = tuple(int(d) for d in input_shape)
        self.num_classes = int(num_classes)
        self.options = options or LayerSpaceOptions()
        self.options.check()
        self.ndim = len(self.input_shape) - 1
        # Legal values of every parameter of every kind, under these options.
        self.domains = self.options.domains()

    # -- (de)serialisation -------------------------------------------------------------------
    def to_json(self, genome: LayerGenome) -> list[dict[str, Any]] | dict[str, Any]:
        layers = [layer.to_json() for layer in genome.layers]
        return {"layers": layers, "hparams": dict(genome.hparams)} if genome.hparams else layers

    def from_json(self, data: Any) -> LayerGenome:
        hparams: dict[str, Any] = {}
        if isinstance(data, dict) and "layers" in data:
            hparams = data.get("hparams") or {}
            if not isinstance(hparams, dict) or any(k not in HPARAMS for k in hparams):
                raise InvalidGenome(f"genome hparams must be a mapping with keys among {HPARAMS}, got {hparams!r}")
            data = data["layers"]
        if not isinstance(data, list):
            raise InvalidGenome("a layer genome is a list of components")
        layers = []
        for i, item in enumerate(data):
            if not isinstance(item, dict) or item.get("kind") not in KINDS:
                raise InvalidGenome(f"component {i}: needs 'kind' in {KINDS}, got {item!r}")
            params = {k: v for k, v in item.items() if k != "kind"}
            expected = set(self.domains[item["kind"]])
            if set(params) != expected:
                raise InvalidGenome(f"component {i} ({item['kind']}): parameters {sorted(params)} != {sorted(expected)}")
            layers.append(Layer.of(item["kind"], **params))
        return LayerGenome(tuple(layers), tuple(sorted(hparams.items())))

    def config(self) -> dict[str, Any]:
        return {
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in self.options.__dict__.items()},
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LayerGraphSpace:
        options: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in config.get("options", {}).items()}
        options["hparams"] = tuple((name, tuple(values)) for name, values in options.get("hparams", ()))
        return cls(tuple(config["input_shape"]), config["num_classes"], LayerSpaceOptions(**options))

    def describe(self, genome: LayerGenome) -> str:
        text = " ".join(COMPONENTS[layer.kind].describe(dict(layer.params)) for layer in genome.layers) or "(empty)"
        if genome.hparams:
            text += " | " + " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in genome.hparams)
        return text

    # -- shapes and repair (shapes.py) -----------------------------------------------------------
    def _infer(self, genome: LayerGenome) -> list[tuple[Shape | None, str | None]]:
        return infer(self, genome)

    def receptive_field(self, genome: LayerGenome) -> int:
        return receptive_field(self, genome)

    def problems(self, genome: LayerGenome) -> list[str]:
        return problems(self, genome)

    def repair(self, genome: LayerGenome) -> LayerGenome:
        return repair(self, genome)

    def validate(self, genome: LayerGenome) -> LayerGenome:
        return validate(self, genome)

    # -- sampling and variation (variation.py) ---------------------------------------------------
    def stem(self, act: str) -> list[Layer]:
        return stem(self, act)

    def sample(self, rng: np.random.Generator) -> LayerGenome:
        return sample(self, rng)

    def mutate(self, genome: LayerGenome, rng: np.random.Generator) -> tuple[LayerGenome, str]:
        return mutate(self, genome, rng)

    def crossover(self, a: LayerGenome, b: LayerGenome, rng: np.random.Generator) -> LayerGenome:
        return crossover(self, a, b, rng)

    # -- what evaluation needs beyond the network ------------------------------------------------
    def training_overrides(self, genome: LayerGenome) -> dict[str, Any]:
        return dict(genome.hparams)

    def module_map(self, parent: LayerGenome, child: LayerGenome) -> dict[str, str]:
        """Child module -> parent module through the longest common subsequence of components, so
        layers that survived an insertion, deletion or crossover find their trained weights."""
        a, b = parent.layers, child.layers
        lcs = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
        for i in range(len(a) - 1, -1, -1):
            for j in range(len(b) - 1, -1, -1):
                lcs[i][j] = lcs[i + 1][j + 1] + 1 if a[i] == b[j] else max(lcs[i + 1][j], lcs[i][j + 1])
        mapping = {"classifier": "classifier"}
        i = j = 0
        while i < len(a) and j < len(b):
            if a[i] == b[j]:
                for suffix in WEIGHT_SUFFIXES:
                    mapping[f"l{j}{suffix}"] = f"l{i}{suffix}"
                i, j = i + 1, j + 1
            elif lcs[i + 1][j] >= lcs[i][j + 1]:
                i += 1
            else:
                j += 1
        return mapping

    # -- building (build.py) ---------------------------------------------------------------------
    def plan(self, genome: LayerGenome) -> Plan:
        return plan_of(self, genome)

    def build(self, genome: LayerGenome) -> PlanNet:
        return PlanNet(self.plan(genome))

    # -- the space as categorical decisions (encoding.py) ----------------------------------------
    def decision_depth(self) -> int:
        return decision_depth(self)

    def _slot_params(self) -> list[tuple[str, str, tuple[Any, ...]]]:
        return slot_params(self)

    def decisions(self) -> list[int]:
        return decisions_of(self)

    def encode(self, genome: LayerGenome) -> list[int]:
        return encode(self, genome)

    def decode(self, choices: Any) -> LayerGenome:
        return decode(self, choices)
