"""The sequence space: models over token or character embeddings, for classification or causal LM.

A genome is a model width, a stack of blocks mixed per layer, and (for classification) a pooling
and an optional n-gram embedding-bag branch:
- transformer: heads, feed-forward width (a multiple of the model width), dropout, pre/post norm;
- rnn: LSTM or GRU, hidden width, layers, bidirectional (never in a language model: it would see
  the future);
- conv: 1-D convolution (kernel, dilation, activation), causal in a language model.
Every block is residual at the model width, so any mix stacks. The n-gram branch is fastText:
hashed 1..n-grams of the token ids averaged by an EmbeddingBag (rows start near zero, as in
fastText; whole n-grams are dropped at the genome's dropout rate in training) and concatenated with
the pooled stack features; on small corpora it is what reaches bag-of-words baselines (a stack of
learned layers from random embeddings alone does not).

Task "classify": ids N x L (0 = padding) -> logits N x classes. Task "lm": ids N x T -> next-token
logits N x T x vocab, every position seeing only itself and earlier positions. The networks
themselves are in sequence_net.py.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import InvalidGenome
from .base import SearchSpace
from .layers import Layer
from .sequence_net import ACTS, SequenceNet

TASKS = ("classify", "lm")
BLOCK_KINDS = ("transformer", "rnn", "conv")
POOLS = ("mean", "max")


@dataclass(frozen=True)
class SequenceGenome:
    width: int
    blocks: tuple[Layer, ...]
    dropout: float  # on embeddings, before the classifier, and of whole n-grams in the bag (training only)
    pool: str
    ngram: int  # 0: no n-gram branch; n: hashed 1..n-grams
    bag_dim: int

    def __len__(self) -> int:
        return len(self.blocks)


@dataclass(frozen=True)
class SequenceSpaceOptions:
    min_blocks: int = 1
    max_blocks: int = 3
    kinds: tuple[str, ...] = BLOCK_KINDS
    widths: tuple[int, ...] = (64, 128, 256)
    heads: tuple[int, ...] = (1, 2, 4, 8)
    ff_mults: tuple[int, ...] = (1, 2, 4)
    dropout_rates: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.5)
    rnn_widths: tuple[int, ...] = (64, 128, 256)
    rnn_layers: tuple[int, ...] = (1, 2)
    kernels: tuple[int, ...] = (3, 5, 7)
    dilations: tuple[int, ...] = (1, 2, 4)
    ngrams: tuple[int, ...] = (0, 1, 2, 3)
    bag_dims: tuple[int, ...] = (32, 64, 128)
    # Rows of the n-gram table: unigrams keep their token id, longer n-grams hash into the rest.
    buckets: int = 1 << 16

    def block_domains(self, task: str) -> dict[str, dict[str, tuple[Any, ...]]]:
        return {
            "transformer": {"heads": self.heads, "ff": self.ff_mults, "dropout": self.dropout_rates, "norm": ("pre", "post")},
            "rnn": {"cell": ("lstm", "gru"), "hidden": self.rnn_widths, "layers": self.rnn_layers,
                    "bidirectional": (False,) if task == "lm" else (False, True), "dropout": self.dropout_rates},
            "conv": {"kernel": self.kernels, "dilation": self.dilations, "act": tuple(ACTS), "dropout": self.dropout_rates},
        }

    def check(self) -> None:
        if not 0 <= self.min_blocks <= self.max_blocks:
            raise InvalidGenome("sequence space: need 0 <= min_blocks <= max_blocks")
        unknown = [k for k in self.kinds if k not in BLOCK_KINDS]
        if not self.kinds or unknown:
            raise InvalidGenome(f"sequence space: block kinds must be a non-empty subset of {BLOCK_KINDS}, got {list(self.kinds)}")
        for name in ("widths", "heads", "ff_mults", "dropout_rates", "rnn_widths", "rnn_layers", "kernels", "dilations", "ngrams",
                     "bag_dims"):
            if not getattr(self, name):
                raise InvalidGenome(f"sequence space: {name} must not be empty")
        if any(v < 1 for v in self.widths + self.heads + self.ff_mults + self.rnn_widths + self.rnn_layers + self.kernels
               + self.dilations + self.bag_dims) or any(n < 0 for n in self.ngrams):
            raise InvalidGenome("sequence space: widths, heads, multipliers, kernels, dilations and sizes must be positive")
        if any(not 0 <= r < 1 for r in self.dropout_rates):
            raise InvalidGenome("sequence space: dropout_rates must lie in [0, 1)")
        if "transformer" in self.kinds:
            bad = [w for w in self.widths if not any(w % h == 0 for h in self.heads)]
            if bad:
                raise InvalidGenome(f"sequence space: no head count in {list(self.heads)} divides width(s) {bad}")


def _choice(rng: np.random.Generator, values: tuple[Any, ...]) -> Any:
    value = values[int(rng.integers(len(values)))]
    return value.item() if isinstance(value, np.generic) else value


class SequenceSpace(SearchSpace[SequenceGenome]):
    name = "sequence"

    def __init__(self, vocab_size: int, num_classes: int | None = None, max_length: int = 64, task: str = "classify",
                 options: SequenceSpaceOptions | None = None):
        if task not in TASKS:
            raise InvalidGenome(f"sequence space: task must be one of {TASKS}, got {task!r}")
        if vocab_size < 3 or max_length < 1:
            raise InvalidGenome(f"sequence space: need a vocabulary of 3+ tokens and max_length >= 1, got {vocab_size}, {max_length}")
        if task == "classify" and (num_classes is None or num_classes < 1):
            raise InvalidGenome(f"need at least 1 output (classes, labels or targets), got {num_classes}")
        self.vocab_size, self.max_length, self.task = int(vocab_size), int(max_length), task
        self.num_classes = int(num_classes) if task == "classify" and num_classes is not None else self.vocab_size
        self.options = options or SequenceSpaceOptions()
        self.options.check()
        self._blocks = self.options.block_domains(task)

    # -- (de)serialisation -------------------------------------------------------------------
    def _globals(self) -> dict[str, tuple[Any, ...]]:
        o = self.options
        if self.task == "lm":  # no pooling and no bag of n-grams in a language model
            return {"width": o.widths, "dropout": o.dropout_rates, "pool": ("mean",), "ngram": (0,), "bag_dim": o.bag_dims[:1]}
        return {"width": o.widths, "dropout": o.dropout_rates, "pool": POOLS, "ngram": o.ngrams, "bag_dim": o.bag_dims}

    def to_json(self, genome: SequenceGenome) -> dict[str, Any]:
        return {"width": genome.width, "dropout": genome.dropout, "pool": genome.pool, "ngram": genome.ngram,
                "bag_dim": genome.bag_dim, "blocks": [b.to_json() for b in genome.blocks]}

    def from_json(self, data: Any) -> SequenceGenome:
        if not isinstance(data, dict) or not isinstance(data.get("blocks"), list):
            raise InvalidGenome("a sequence genome is a mapping with a 'blocks' list")
        expected = set(self._globals()) | {"blocks"}
        if set(data) != expected:
            raise InvalidGenome(f"sequence genome: fields {sorted(data)} != {sorted(expected)}")
        blocks = []
        for i, item in enumerate(data["blocks"]):
            if not isinstance(item, dict) or item.get("kind") not in BLOCK_KINDS:
                raise InvalidGenome(f"block {i}: needs 'kind' in {BLOCK_KINDS}, got {item!r}")
            params = {k: v for k, v in item.items() if k != "kind"}
            if set(params) != set(self._blocks[item["kind"]]):
                raise InvalidGenome(f"block {i} ({item['kind']}): parameters {sorted(params)} != {sorted(self._blocks[item['kind']])}")
            blocks.append(Layer.of(item["kind"], **params))
        genome = SequenceGenome(data["width"], tuple(blocks), data["dropout"], data["pool"], data["ngram"], data["bag_dim"])
        problems = self.problems(genome)
        if problems:
            raise InvalidGenome("; ".join(problems))
        return genome

    def config(self) -> dict[str, Any]:
        return {
            "vocab_size": self.vocab_size, "num_classes": self.num_classes if self.task == "classify" else None,
            "max_length": self.max_length, "task": self.task,
            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in self.options.__dict__.items()},
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SequenceSpace:
        options: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in config.get("options", {}).items()}
        return cls(config["vocab_size"], config.get("num_classes"), config.get("max_length", 64), config.get("task", "classify"),
                   SequenceSpaceOptions(**options))

    def describe(self, genome: SequenceGenome) -> str:
        parts = []
        for b in genome.blocks:
            p = dict(b.params)
            if b.kind == "transformer":
                parts.append(f"tf h{p['heads']} ff{p['ff']}x {p['norm']}")
            elif b.kind == "rnn":
                parts.append(f"{p['cell']}{p['hidden']}x{p['layers']}" + (" bi" if p["bidirectional"] else ""))
            else:
                parts.append(f"conv{p['kernel']}" + (f"d{p['dilation']}" if p["dilation"] > 1 else "") + f" {p['act']}")
        text = f"d{genome.width} [{' | '.join(parts)}] drop{genome.dropout}"
        if self.task == "classify":
            text += f" {genome.pool}" + (f" +bag{genome.ngram}x{genome.bag_dim}" if genome.ngram else "")
        return text

    # -- validity and repair ---------------------------------------------------------------------
    def problems(self, genome: SequenceGenome) -> list[str]:
        found = []
        for name, values in self._globals().items():
            if getattr(genome, name) not in values:
                found.append(f"{name}={getattr(genome, name)!r} outside the space {list(values)}")
        if not self.options.min_blocks <= len(genome.blocks) <= self.options.max_blocks:
            found.append(f"{len(genome.blocks)} blocks outside {self.options.min_blocks}..{self.options.max_blocks}")
        for i, b in enumerate(genome.blocks):
            if b.kind not in self.options.kinds:
                found.append(f"block {i}: kind {b.kind!r} is not in this space ({list(self.options.kinds)})")
                continue
            for name, value in b.params:
                if value not in self._blocks[b.kind].get(name, ()):
                    found.append(f"block {i} ({b.kind}): {name}={value!r} outside the space")
            if b.kind == "transformer" and genome.width % b["heads"]:
                found.append(f"block {i}: {b['heads']} heads do not divide width {genome.width}")
        return found

    def repair(self, genome: SequenceGenome) -> SequenceGenome:
        """Heads that do not divide the width become the largest count that does; a language model's
        globals take their only legal values; the stack is cut to max_blocks."""
        g = self._globals()
        blocks = []
        for b in genome.blocks[: self.options.max_blocks]:
            if b.kind == "transformer" and genome.width % b["heads"]:
                b = b.replace(heads=max(h for h in self.options.heads if genome.width % h == 0))
            if b.kind == "rnn" and b["bidirectional"] not in self._blocks["rnn"]["bidirectional"]:
                b = b.replace(bidirectional=False)
            blocks.append(b)
        pool = genome.pool if genome.pool in g["pool"] else g["pool"][0]
        ngram = genome.ngram if genome.ngram in g["ngram"] else g["ngram"][0]
        bag = genome.bag_dim if genome.bag_dim in g["bag_dim"] else g["bag_dim"][0]
        return SequenceGenome(genome.width, tuple(blocks), genome.dropout, pool, ngram, bag)

    # -- sampling and variation ----------------------------------------------------------------
    def _random_block(self, rng: np.random.Generator, kind: str | None = None) -> Layer:
        kind = kind or _choice(rng, self.options.kinds)
        return Layer.of(kind, **{name: _choice(rng, values) for name, values in self._blocks[kind].items()})

    def sample(self, rng: np.random.Generator) -> SequenceGenome:
        g = self._globals()
        n = int(rng.integers(self.options.min_blocks, self.options.max_blocks + 1))
        blocks = tuple(self._random_block(rng) for _ in range(n))
        return self.repair(SequenceGenome(_choice(rng, g["width"]), blocks, _choice(rng, g["dropout"]), _choice(rng, g["pool"]),
                                          _choice(rng, g["ngram"]), _choice(rng, g["bag_dim"])))

    def _vary(self, genome: SequenceGenome, op: str, rng: np.random.Generator) -> tuple[SequenceGenome, str] | None:
        blocks = list(genome.blocks)
        if op == "global":
            tunable = [(n, v) for n, v in self._globals().items() if len(v) > 1]
            name, values = tunable[int(rng.integers(len(tunable)))]
            value = _choice(rng, tuple(v for v in values if v != getattr(genome, name)))
            return replace(genome, **{name: value}), f"change:{name}"
        if op == "insert":
            if len(blocks) >= self.options.max_blocks:
                return None
            new = self._random_block(rng)
            blocks.insert(int(rng.integers(len(blocks) + 1)), new)
            return replace(genome, blocks=tuple(blocks)), f"insert:{new.kind}"
        if not blocks:
            return None
        i = int(rng.integers(len(blocks)))
        if op == "delete":
            if len(blocks) <= self.options.min_blocks:
                return None
            kind = blocks.pop(i).kind
            return replace(genome, blocks=tuple(blocks)), f"delete:{kind}"
        if op == "replace":
            if len(self.options.kinds) < 2:
                return None
            new = self._random_block(rng, _choice(rng, tuple(k for k in self.options.kinds if k != blocks[i].kind)))
            blocks[i] = new
            return replace(genome, blocks=tuple(blocks)), f"replace:{new.kind}"
        # change one parameter of one block
        b = blocks[i]
        names = [n for n, v in self._blocks[b.kind].items() if len(v) > 1]
        if not names:
            return None
        name = names[int(rng.integers(len(names)))]
        blocks[i] = b.replace(**{name: _choice(rng, tuple(v for v in self._blocks[b.kind][name] if v != b[name]))})
        return replace(genome, blocks=tuple(blocks)), f"change:{b.kind}.{name}"

    def mutate(self, genome: SequenceGenome, rng: np.random.Generator) -> tuple[SequenceGenome, str]:
        ops = ("global", "insert", "delete", "replace", "change")
        for _ in range(50):
            varied = self._vary(genome, ops[int(rng.integers(len(ops)))], rng)
            if varied is None:
                continue
            child = self.repair(varied[0])
            if child != genome:
                return child, varied[1]
        return self.sample(rng), "resample"

    def crossover(self, a: SequenceGenome, b: SequenceGenome, rng: np.random.Generator) -> SequenceGenome:
        """One-point crossover of the block stacks; each global comes from either parent."""
        for _ in range(20):
            i, j = int(rng.integers(len(a) + 1)), int(rng.integers(len(b) + 1))
            blocks = a.blocks[:i] + b.blocks[j:]
            if self.options.min_blocks <= len(blocks) <= self.options.max_blocks:
                break
        else:
            blocks = a.blocks
        pick = {name: getattr(a if rng.random() < 0.5 else b, name) for name in self._globals()}
        return self.repair(SequenceGenome(pick["width"], blocks, pick["dropout"], pick["pool"], pick["ngram"], pick["bag_dim"]))

    # -- building ----------------------------------------------------------------------------
    def build(self, genome: SequenceGenome) -> SequenceNet:
        problems = self.problems(genome)
        if problems:
            raise InvalidGenome("; ".join(problems))
        return SequenceNet(genome, self.vocab_size, self.num_classes, self.max_length, self.task, self.options.buckets)
