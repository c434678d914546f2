"""The layer-graph space: an ordered stack of components for 1-D signals and 2-D images.

Components: conv (kernel, channels, stride), pool (max/avg, size), dense (units), dropout (rate),
norm (batch norm), act (relu/gelu/silu/...), multiscale (parallel convs of several kernel sizes,
`channels` each, concatenated: Inception-style, for inputs whose useful scale is unknown, such as
spectrograms), and skip (span): `skip` adds the tensor from `span` components earlier to the
current one, through a pooling and 1x1 projection where shapes differ.
The first `dense` switches from feature maps to vectors (global average pooling in between); the
network always ends in global pooling and a linear classifier.

Every genome leaving this module has passed `repair`, which makes it buildable for the task:
components that cannot apply (a pool that would shrink a map below 1, a conv after the first
dense, a skip across the map/vector boundary) are dropped or neutralised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidGenome
from .base import SearchSpace
from .plan import Plan, PlanNet

ACTIVATIONS = {"relu": "ReLU", "gelu": "GELU", "silu": "SiLU", "tanh": "Tanh", "elu": "ELU", "leaky_relu": "LeakyReLU"}
KINDS = ("conv", "pool", "dense", "dropout", "norm", "act", "skip", "multiscale")
# How often each kind is drawn when a mutation inserts or replaces a component.
INSERT_WEIGHTS = {"conv": 0.3, "norm": 0.1, "act": 0.1, "pool": 0.15, "skip": 0.17, "dropout": 0.08, "dense": 0.1,
                  "multiscale": 0.1}
SPATIAL_ONLY = {"conv", "pool", "multiscale"}
# Sampled genomes of larger 2-D inputs begin by halving them down to this side (LayerGraphSpace.stem).
STEM_SIDE = 16
HPARAMS = ("lr", "weight_decay", "batch_size", "epochs")


@dataclass(frozen=True)
class Layer:
    """One component: a kind and its parameters (sorted name/value pairs, so it hashes)."""

    kind: str
    params: tuple[tuple[str, Any], ...] = ()

    @staticmethod
    def of(kind: str, **params: Any) -> Layer:
        return Layer(kind, tuple(sorted(params.items())))

    def __getitem__(self, name: str) -> Any:
        for key, value in self.params:
            if key == name:
                return value
        raise KeyError(name)

    def replace(self, **changes: Any) -> Layer:
        return Layer.of(self.kind, **{**dict(self.params), **changes})

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, **dict(self.params)}


@dataclass(frozen=True)
class LayerGenome:
    layers: tuple[Layer, ...]
    # Training hyper-parameters searched with the architecture (sorted name/value pairs); empty
    # unless the space's options name domains for them.
    hparams: tuple[tuple[str, Any], ...] = ()

    def __len__(self) -> int:
        return len(self.layers)


@dataclass(frozen=True)
class LayerSpaceOptions:
    """Bounds of the space. Sampling draws `min_blocks..max_blocks` blocks (conv/norm/act motifs,
    pools, optional skips); mutation and crossover may go up to `max_layers` components."""

    min_blocks: int = 2
    max_blocks: int = 6
    max_layers: int = 40
    channels: tuple[int, ...] = (8, 16, 32, 64, 128)
    kernels: tuple[int, ...] = (3, 5, 7)
    dense_units: tuple[int, ...] = (32, 64, 128, 256)
    dropout_rates: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5)
    activations: tuple[str, ...] = ("relu", "gelu", "silu")
    max_skip_span: int = 6
    # Sampled genomes of 2-D inputs wider than STEM_SIDE start with stride-2 convolutions (stem()).
    stem: bool = True
    # name -> legal values, for name in HPARAMS; searched, mutated and inherited with the layers.
    hparams: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def multiscale_kernels(self) -> tuple[str, ...]:
        """Kernel sets of a multiscale block, as text ("1-3-5"): a pointwise branch plus growing
        prefixes of the odd kernels (odd only, so every branch keeps the map size and they concatenate)."""
        odd = sorted({k for k in self.kernels if k % 2} | {1})
        return tuple("-".join(map(str, odd[:n])) for n in range(2, len(odd) + 1)) or ("1",)

    def domains(self) -> dict[str, dict[str, tuple[Any, ...]]]:
        """Legal values of every parameter of every kind."""
        return {
            "conv": {"kernel": self.kernels, "channels": self.channels, "stride": (1, 2)},
            "pool": {"op": ("max", "avg"), "size": (2, 3)},
            "dense": {"units": self.dense_units},
            "dropout": {"rate": self.dropout_rates},
            "norm": {},
            "act": {"fn": self.activations},
            "skip": {"span": tuple(range(1, self.max_skip_span + 1))},
            "multiscale": {"kernels": self.multiscale_kernels(), "channels": self.channels},
        }

    def check(self) -> None:
        if not 1 <= self.min_blocks <= self.max_blocks:
            raise InvalidGenome("space: need 1 <= min_blocks <= max_blocks")
        if self.max_layers < 1 or self.max_skip_span < 1:
            raise InvalidGenome("space: max_layers and max_skip_span must be >= 1")
        for name in ("channels", "kernels", "dense_units", "dropout_rates", "activations"):
            if not getattr(self, name):
                raise InvalidGenome(f"space: {name} must not be empty")
        if any(k < 1 for k in self.kernels) or any(c < 1 for c in self.channels + self.dense_units):
            raise InvalidGenome("space: kernels, channels and dense_units must be positive")
        if any(not 0 <= r < 1 for r in self.dropout_rates):
            raise InvalidGenome("space: dropout_rates must lie in [0, 1)")
        bad = [name for name, values in self.hparams if name not in HPARAMS or not values]
        if bad:
            raise InvalidGenome(f"space: hparams {bad} must be among {HPARAMS} with at least one value each")
        unknown = [a for a in self.activations if a not in ACTIVATIONS]
        if unknown:
            raise InvalidGenome(f"space: unknown activation(s) {unknown}; known: {sorted(ACTIVATIONS)}")


# Shapes during inference: ("map", channels, (spatial dims...)) or ("vec", features).
Shape = tuple


def _pool_out(size: int, kernel: int) -> int:
    padding = kernel // 2 if kernel % 2 else 0
    return math.floor((size + 2 * padding - kernel) / 2) + 1


def _conv_out(size: int, kernel: int, stride: int) -> int:
    return math.floor((size + 2 * (kernel // 2) - kernel) / stride) + 1


class LayerGraphSpace(SearchSpace):
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
        self._domains = self.options.domains()

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
            expected = set(self._domains[item["kind"]])
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
        options = {k: tuple(v) if isinstance(v, list) else v for k, v in config.get("options", {}).items()}
        options["hparams"] = tuple((name, tuple(values)) for name, values in options.get("hparams", ()))
        return cls(tuple(config["input_shape"]), config["num_classes"], LayerSpaceOptions(**options))

    def describe(self, genome: LayerGenome) -> str:
        parts = []
        for layer in genome.layers:
            p = dict(layer.params)
            if layer.kind == "conv":
                parts.append(f"conv{p['kernel']}x{p['channels']}" + ("/2" if p["stride"] == 2 else ""))
            elif layer.kind == "pool":
                parts.append(f"{p['op']}pool{p['size']}")
            elif layer.kind == "dense":
                parts.append(f"fc{p['units']}")
            elif layer.kind == "dropout":
                parts.append(f"drop{p['rate']}")
            elif layer.kind == "norm":
                parts.append("bn")
            elif layer.kind == "act":
                parts.append(p["fn"])
            elif layer.kind == "multiscale":
                parts.append(f"ms[{p['kernels']}]x{p['channels']}")
            else:
                parts.append(f"+skip{p['span']}")
        text = " ".join(parts) or "(empty)"
        if genome.hparams:
            text += " | " + " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in genome.hparams)
        return text

    # -- shapes and repair ---------------------------------------------------------------------
    def _infer(self, genome: LayerGenome) -> list[tuple[Shape | None, str | None]]:
        """For each component: the shape after it (None when it cannot apply) and why not."""
        points: list[Shape] = [("map", self.input_shape[0], self.input_shape[1:])]
        out: list[tuple[Shape | None, str | None]] = []
        for i, layer in enumerate(genome.layers):
            cur = points[-1]
            problem = None
            new = cur
            if layer.kind in SPATIAL_ONLY and cur[0] != "map":
                problem = f"{layer.kind} after the first dense layer"
            elif layer.kind == "conv":
                stride = layer["stride"]
                if stride > 1 and min(cur[2]) < 2:
                    problem = "stride 2 on a feature map of size 1"
                else:
                    new = ("map", layer["channels"], tuple(_conv_out(s, layer["kernel"], stride) for s in cur[2]))
            elif layer.kind == "pool":
                dims = tuple(_pool_out(s, layer["size"]) for s in cur[2])
                if min(cur[2]) < 2 or min(dims) < 1:
                    problem = f"pooling would shrink a {'x'.join(map(str, cur[2]))} feature map below 1"
                else:
                    new = ("map", cur[1], dims)
            elif layer.kind == "dense":
                new = ("vec", layer["units"])
            elif layer.kind == "multiscale":
                new = ("map", layer["channels"] * len(layer["kernels"].split("-")), cur[2])
            elif layer.kind == "skip":
                src = points[max(0, i - layer["span"])]
                if i == 0:
                    problem = "skip at the very start has nothing to skip over"
                elif src[0] != cur[0]:
                    problem = "skip across the feature-map/vector boundary"
            # An inapplicable component is treated as identity so later indices stay aligned.
            points.append(new if problem is None else cur)
            out.append((new if problem is None else None, problem))
        return out

    def receptive_field(self, genome: LayerGenome) -> int:
        """Along the main path, up to the first dense layer (kernels and pools are square, so one
        number serves every axis); a skip adds a shorter path and leaves it unchanged."""
        rf, jump = 1, 1
        for layer, (shape, problem) in zip(genome.layers, self._infer(genome)):
            if problem is not None:
                continue  # not applied: identity
            if shape[0] != "map":
                break
            if layer.kind == "conv":
                rf += (layer["kernel"] - 1) * jump
                jump *= layer["stride"]
            elif layer.kind == "multiscale":
                rf += (max(int(k) for k in layer["kernels"].split("-")) - 1) * jump
            elif layer.kind == "pool":
                rf += (layer["size"] - 1) * jump
                jump *= 2
        return rf

    def problems(self, genome: LayerGenome) -> list[str]:
        """Why a genome cannot be built as it is (empty when it can)."""
        infos = self._infer(genome)
        found = [f"component {i} ({layer.kind}): {why}" for i, ((_, why), layer) in enumerate(zip(infos, genome.layers)) if why]
        if len(genome) > self.options.max_layers:
            found.append(f"{len(genome)} components exceed max_layers={self.options.max_layers}")
        for i, layer in enumerate(genome.layers):
            for name, value in layer.params:
                if value not in self._domains[layer.kind].get(name, ()):
                    found.append(f"component {i} ({layer.kind}): {name}={value!r} outside the space")
        return found

    def repair(self, genome: LayerGenome) -> LayerGenome:
        """The nearest buildable genome: drops or neutralises components that cannot apply."""
        layers = list(genome.layers[: self.options.max_layers])
        # One pass can expose new problems (a dropped layer moves skip sources), so iterate.
        for _ in range(len(layers) + 1):
            infos = self._infer(LayerGenome(tuple(layers)))
            bad = next((i for i, (_, why) in enumerate(infos) if why), None)
            if bad is None:
                break
            layer = layers[bad]
            if layer.kind == "conv" and layer["stride"] > 1 and infos[bad][1].startswith("stride"):
                layers[bad] = layer.replace(stride=1)
            else:
                del layers[bad]
        return LayerGenome(tuple(layers), self._fix_hparams(genome.hparams))

    def _fix_hparams(self, hparams: tuple[tuple[str, Any], ...]) -> tuple[tuple[str, Any], ...]:
        """Exactly the space's hyper-parameters, each legal: unknown ones go, missing ones take the
        first listed value (so genomes made before the domains existed stay usable)."""
        given = dict(hparams)
        return tuple(sorted((name, given[name] if given.get(name) in values else values[0]) for name, values in self.options.hparams))

    def validate(self, genome: LayerGenome) -> LayerGenome:
        problems = self.problems(genome)
        if problems:
            raise InvalidGenome("; ".join(problems))
        return genome

    # -- sampling and variation ----------------------------------------------------------------
    def _choice(self, rng: np.random.Generator, values: tuple[Any, ...]) -> Any:
        value = values[int(rng.integers(len(values)))]
        return value.item() if isinstance(value, np.generic) else value

    def _random_component(self, rng: np.random.Generator, kind: str | None = None) -> Layer:
        if kind is None:
            kinds, weights = zip(*INSERT_WEIGHTS.items())
            kind = kinds[int(rng.choice(len(kinds), p=np.array(weights) / sum(weights)))]
        params = {name: self._choice(rng, values) for name, values in self._domains[kind].items()}
        if kind == "conv":
            params["stride"] = 1 if rng.random() < 0.8 else 2
        return Layer.of(kind, **params)

    def stem(self, act: str) -> list[Layer]:
        """Early downsampling of large images: a sampled genome of a 2-D input wider than STEM_SIDE
        starts with stride-2 convolutions (narrow: the map is large there) until it is no wider. The
        blocks drawn after it then work on maps of the size they suit (on 28x28 digits, random
        full-resolution nets took minutes per trial and most scored under 60%). Draws nothing from
        the generator, so samples of smaller inputs are what they were."""
        if self.ndim != 2 or not self.options.stem:
            return []
        o = self.options
        kernel = 3 if 3 in o.kernels else min(o.kernels)
        channels = min((c for c in o.channels if c >= 16), default=max(o.channels))
        layers, side = [], min(self.input_shape[1:])
        while side > STEM_SIDE:
            layers += [Layer.of("conv", kernel=kernel, channels=channels, stride=2), Layer.of("norm"), Layer.of("act", fn=act)]
            side = _conv_out(side, kernel, 2)
        return layers

    def sample(self, rng: np.random.Generator) -> LayerGenome:
        o = self.options
        act = self._choice(rng, o.activations)
        layers: list[Layer] = self.stem(act)
        for _ in range(int(rng.integers(o.min_blocks, o.max_blocks + 1))):
            if rng.random() < 0.75:
                if rng.random() < 0.2:
                    block = [self._random_component(rng, "multiscale")]
                else:
                    block = [Layer.of("conv", kernel=self._choice(rng, o.kernels), channels=self._choice(rng, o.channels), stride=1)]
                if rng.random() < 0.7:
                    block.append(Layer.of("norm"))
                block.append(Layer.of("act", fn=act))
                if layers and rng.random() < 0.35 and len(block) <= o.max_skip_span:
                    block.append(Layer.of("skip", span=len(block)))
            else:
                block = [self._random_component(rng, "pool")]
            if rng.random() < 0.1:
                block.append(self._random_component(rng, "dropout"))
            layers += block
        if rng.random() < 0.3:
            layers += [self._random_component(rng, "dense"), Layer.of("act", fn=act)]
            if rng.random() < 0.5:
                layers.append(self._random_component(rng, "dropout"))
        hparams = tuple(sorted((name, self._choice(rng, values)) for name, values in o.hparams))
        return self.repair(LayerGenome(tuple(layers), hparams))

    def _vary(self, genome: LayerGenome, op: str, rng: np.random.Generator) -> tuple[LayerGenome, str] | None:
        varied = self._vary_layers(genome, op, rng)
        if varied is None:
            return None
        return LayerGenome(tuple(varied[0]), genome.hparams), varied[1]

    def _vary_hparam(self, genome: LayerGenome, rng: np.random.Generator) -> tuple[LayerGenome, str] | None:
        tunable = [(name, values) for name, values in self.options.hparams if len(values) > 1]
        if not tunable:
            return None
        name, values = tunable[int(rng.integers(len(tunable)))]
        current = dict(genome.hparams)
        current[name] = self._choice(rng, tuple(v for v in values if v != current.get(name)))
        return LayerGenome(genome.layers, tuple(sorted(current.items()))), f"change:hp.{name}"

    def _vary_layers(self, genome: LayerGenome, op: str, rng: np.random.Generator) -> tuple[list[Layer], str] | None:
        layers = list(genome.layers)
        if op == "insert":
            if len(layers) >= self.options.max_layers:
                return None
            new = self._random_component(rng)
            at = int(rng.integers(len(layers) + 1))
            # A skip whose span reached back over the insertion point must reach one further, or the
            # inherited function would change beyond the new layer itself.
            for j in range(at, len(layers)):
                layer = layers[j]
                if layer.kind == "skip" and j - layer["span"] < at and layer["span"] < self.options.max_skip_span:
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
            new = self._random_component(rng)
            if new.kind == layers[i].kind:
                return None
            layers[i] = new
            return layers, f"replace:{new.kind}"
        # change_param: one parameter of one component takes a different legal value.
        tunable = [j for j, layer in enumerate(layers) if any(len(v) > 1 for v in self._domains[layer.kind].values())]
        if not tunable:
            return None
        j = tunable[int(rng.integers(len(tunable)))]
        layer = layers[j]
        names = [n for n, v in self._domains[layer.kind].items() if len(v) > 1]
        name = names[int(rng.integers(len(names)))]
        choices = tuple(v for v in self._domains[layer.kind][name] if v != layer[name])
        layers[j] = layer.replace(**{name: self._choice(rng, choices)})
        return layers, f"change:{layer.kind}.{name}"

    def mutate(self, genome: LayerGenome, rng: np.random.Generator) -> tuple[LayerGenome, str]:
        ops = ("insert", "delete", "replace", "change") + (("hparam",) if self.options.hparams else ())
        for _ in range(50):
            op = ops[int(rng.integers(len(ops)))]
            varied = self._vary_hparam(genome, rng) if op == "hparam" else self._vary(genome, op, rng)
            if varied is None:
                continue
            child = self.repair(varied[0])
            if child != genome:
                return child, varied[1]
        # A genome no operator can change (e.g. max_layers=1 with a fixed-value component).
        return self.sample(rng), "resample"

    def crossover(self, a: LayerGenome, b: LayerGenome, rng: np.random.Generator) -> LayerGenome:
        """One-point crossover: a prefix of `a` joined to a suffix of `b`."""
        i = int(rng.integers(len(a) + 1))
        j = int(rng.integers(len(b) + 1))
        hb = dict(b.hparams)
        hparams = tuple((k, v if rng.random() < 0.5 or k not in hb else hb[k]) for k, v in a.hparams)
        return self.repair(LayerGenome(a.layers[:i] + b.layers[j:], hparams))

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
                for suffix in ("", "_proj", "_pool"):
                    mapping[f"l{j}{suffix}"] = f"l{i}{suffix}"
                i, j = i + 1, j + 1
            elif lcs[i + 1][j] >= lcs[i][j + 1]:
                i += 1
            else:
                j += 1
        return mapping

    # -- building ----------------------------------------------------------------------------
    def plan(self, genome: LayerGenome) -> Plan:
        self.validate(genome)
        d = self.ndim
        plan = Plan(input="x", output="logits")
        shapes = self._infer(genome)
        points = ["x"]  # register holding the tensor after each applied component
        point_shapes: list[Shape] = [("map", self.input_shape[0], self.input_shape[1:])]
        cur = "x"
        for i, (layer, (shape, _)) in enumerate(zip(genome.layers, shapes)):
            here = point_shapes[-1]
            name = f"l{i}"
            if layer.kind == "conv":
                k = layer["kernel"]
                plan.module(name, f"Conv{d}d", in_channels=here[1], out_channels=layer["channels"], kernel_size=k,
                            stride=layer["stride"], padding=k // 2)
            elif layer.kind == "pool":
                size = layer["size"]
                cls = "MaxPool" if layer["op"] == "max" else "AvgPool"
                plan.module(name, f"{cls}{d}d", kernel_size=size, stride=2, padding=size // 2 if size % 2 else 0)
            elif layer.kind == "dense":
                if here[0] == "map":
                    plan.module(f"gap{i}", f"AdaptiveAvgPool{d}d", output_size=1)
                    plan.module(f"flat{i}", "Flatten")
                    cur = plan.call(f"gap{i}", cur, f"g{i}")
                    cur = plan.call(f"flat{i}", cur, f"f{i}")
                    here = ("vec", here[1])
                plan.module(name, "Linear", in_features=here[1], out_features=layer["units"])
            elif layer.kind == "dropout":
                plan.module(name, "Dropout", p=layer["rate"])
            elif layer.kind == "norm":
                plan.module(name, f"BatchNorm{d if here[0] == 'map' else 1}d", num_features=here[1])
            elif layer.kind == "act":
                plan.module(name, ACTIVATIONS[layer["fn"]])
            if layer.kind == "skip":
                src_index = max(0, i - layer["span"])
                src, src_shape = points[src_index], point_shapes[src_index]
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
                cur = plan.add((cur, src), f"h{i}")
            elif layer.kind == "multiscale":
                branches = []
                for k in map(int, layer["kernels"].split("-")):
                    plan.module(f"{name}_k{k}", f"Conv{d}d", in_channels=here[1], out_channels=layer["channels"], kernel_size=k,
                                padding=k // 2)
                    branches.append(plan.call(f"{name}_k{k}", cur, f"h{i}k{k}"))
                cur = plan.concat(tuple(branches), f"h{i}")
            else:
                cur = plan.call(name, cur, f"h{i}")
            points.append(cur)
            point_shapes.append(shape)
        last = point_shapes[-1]
        if last[0] == "map":
            plan.module("gap", f"AdaptiveAvgPool{d}d", output_size=1)
            plan.module("flatten", "Flatten")
            cur = plan.call("gap", cur, "pooled")
            cur = plan.call("flatten", cur, "features")
        plan.module("classifier", "Linear", in_features=last[1], out_features=self.num_classes)
        plan.call("classifier", cur, "logits")
        return plan

    def build(self, genome: LayerGenome) -> PlanNet:
        return PlanNet(self.plan(genome))

    # -- the space as categorical decisions (bounded depth) -------------------------------------
    # Each of `decision_depth()` slots is a kind decision (0 = empty slot) followed by one decision
    # per parameter of every kind; a slot's parameter decisions for other kinds are ignored.
    def decision_depth(self) -> int:
        return min(self.options.max_layers, 4 * self.options.max_blocks)

    def _slot_params(self) -> list[tuple[str, str, tuple[Any, ...]]]:
        return [(kind, name, values) for kind in KINDS for name, values in self._domains[kind].items()]

    def decisions(self) -> list[int]:
        slot = [len(KINDS) + 1] + [len(values) for _, _, values in self._slot_params()]
        # Searched training hyper-parameters are decisions too, after the layer slots.
        return slot * self.decision_depth() + [len(values) for _, values in self.options.hparams]

    def encode(self, genome: LayerGenome) -> list[int]:
        depth, params = self.decision_depth(), self._slot_params()
        if len(genome) > depth:
            raise InvalidGenome(f"{len(genome)} components exceed the decision depth {depth}")
        out: list[int] = []
        hparams = dict(genome.hparams)
        tail = [values.index(hparams[name]) if hparams.get(name) in values else 0 for name, values in self.options.hparams]
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

    def decode(self, choices: Any) -> LayerGenome:
        sizes, params = self.decisions(), self._slot_params()
        choices = [int(c) for c in choices]
        if len(choices) != len(sizes) or any(not 0 <= c < n for c, n in zip(choices, sizes)):
            raise InvalidGenome(f"expected {len(sizes)} choices within {sizes[: 1 + len(params)]} per slot")
        n_hp = len(self.options.hparams)
        hp_choices = choices[len(choices) - n_hp:] if n_hp else []
        choices = choices[: len(choices) - n_hp] if n_hp else choices
        hparams = tuple(sorted((name, values[c]) for (name, values), c in zip(self.options.hparams, hp_choices)))
        layers = []
        for start in range(0, len(choices), 1 + len(params)):
            kind_choice = choices[start]
            if kind_choice == 0:
                continue
            kind = KINDS[kind_choice - 1]
            values = {name: vals[choices[start + 1 + k]] for k, (knd, name, vals) in enumerate(params) if knd == kind}
            layers.append(Layer.of(kind, **values))
        return self.repair(LayerGenome(tuple(layers), hparams))
