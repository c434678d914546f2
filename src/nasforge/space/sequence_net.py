"""The networks of the sequence space (sequence.py): residual blocks at the model width
(transformer, recurrent, convolutional), the fastText-style n-gram embedding bag, and SequenceNet,
which stacks them for classification or a causal language model."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from .sequence import SequenceGenome

ACTS = {"relu": nn.ReLU, "gelu": nn.GELU}
# Multiplier of the rolling n-gram hash (a prime, so n-grams differing in one token rarely collide).
HASH_PRIME = 1_000_003


class TransformerBlock(nn.Module):
    def __init__(self, width: int, heads: int, ff: int, dropout: float, norm: str, causal: bool):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(width, heads, ff * width, dropout, activation="gelu", batch_first=True,
                                                norm_first=norm == "pre")
        self.causal = causal

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
        if self.causal:
            mask = nn.Transformer.generate_square_subsequent_mask(x.shape[1], dtype=x.dtype)
            return self.layer(x, src_mask=mask, is_causal=True)
        return self.layer(x, src_key_padding_mask=pad)


class RecurrentBlock(nn.Module):
    def __init__(self, width: int, cell: str, hidden: int, layers: int, bidirectional: bool, dropout: float):
        super().__init__()
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(width, hidden, layers, batch_first=True, bidirectional=bidirectional, dropout=dropout if layers > 1 else 0.0)
        out = hidden * (2 if bidirectional else 1)
        self.proj = nn.Linear(out, width) if out != width else nn.Identity()
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
        # Padding sits at the end, so a forward pass over real tokens never reads it.
        return self.norm(x + self.drop(self.proj(self.rnn(x)[0])))


class ConvBlock(nn.Module):
    def __init__(self, width: int, kernel: int, dilation: int, act: str, dropout: float, causal: bool):
        super().__init__()
        reach = (kernel - 1) * dilation
        # Causal: pad only on the left, so position t sees t and earlier; otherwise centred.
        self.padding = (reach, 0) if causal else (reach // 2, reach - reach // 2)
        self.conv = nn.Conv1d(width, width, kernel, dilation=dilation)
        self.act, self.drop, self.norm = ACTS[act](), nn.Dropout(dropout), nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
        h = x if pad is None else x.masked_fill(pad[..., None], 0.0)
        h = self.conv(nn.functional.pad(h.transpose(1, 2), self.padding)).transpose(1, 2)
        return self.norm(x + self.drop(self.act(h)))


class NgramBag(nn.Module):
    """fastText's bag of n-grams: token ids keep their row, 2..n-grams hash into the rows above the
    vocabulary, n-grams touching padding are row 0 (ignored by the mean)."""

    def __init__(self, vocab_size: int, n: int, dim: int, buckets: int, drop: float = 0.0):
        super().__init__()
        self.vocab_size, self.n, self.drop = vocab_size, n, drop
        self.hashed = max(1, buckets - vocab_size)
        self.bag = nn.EmbeddingBag(vocab_size + self.hashed, dim, mode="mean", padding_idx=0)
        # fastText's initialisation: rows start near zero. Most n-grams are seen once or never in
        # training, and rows left at a unit-normal start would add noise to every mean they enter.
        with torch.no_grad():
            self.bag.weight.uniform_(-1.0 / dim, 1.0 / dim)
            self.bag.weight[0].zero_()

    def ids(self, x: torch.Tensor) -> torch.Tensor:
        parts = [x]
        h, valid = x.clone(), x != 0
        for k in range(1, self.n):
            if x.shape[1] <= k:
                break
            h = (h[:, :-1] * HASH_PRIME + x[:, k:]) % self.hashed
            valid = valid[:, :-1] & (x[:, k:] != 0)
            parts.append(torch.where(valid, h + self.vocab_size, torch.zeros_like(h)))
        return torch.cat(parts, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = self.ids(x)
        if self.training and self.drop > 0:
            # Dropout of whole n-grams (as word dropout in deep averaging networks): a dropped one
            # becomes padding, which the mean ignores.
            ids = ids.masked_fill(torch.rand(ids.shape, device=ids.device) < self.drop, 0)
        return self.bag(ids)


class SequenceNet(nn.Module):
    def __init__(self, genome: SequenceGenome, vocab_size: int, num_outputs: int, max_length: int, task: str, buckets: int):
        super().__init__()
        self.task = task
        causal = task == "lm"
        d = genome.width
        self.embed = nn.Embedding(vocab_size, d, padding_idx=0 if task == "classify" else None)
        has_attention = any(b.kind == "transformer" for b in genome.blocks)
        # Attention alone is order-blind: learned positions are added when the stack has any.
        self.position = nn.Embedding(max_length, d) if has_attention else None
        self.drop = nn.Dropout(genome.dropout)
        blocks: list[nn.Module] = []
        for b in genome.blocks:
            p = dict(b.params)
            if b.kind == "transformer":
                blocks.append(TransformerBlock(d, p["heads"], p["ff"], p["dropout"], p["norm"], causal))
            elif b.kind == "rnn":
                blocks.append(RecurrentBlock(d, p["cell"], p["hidden"], p["layers"], p["bidirectional"], p["dropout"]))
            else:
                blocks.append(ConvBlock(d, p["kernel"], p["dilation"], p["act"], p["dropout"], causal))
        self.blocks = nn.ModuleList(blocks)
        if task == "classify":
            # Word (and position) rows start near zero, as the bag's do: from nn.Embedding's unit-normal
            # start, a few epochs on a small corpus barely move them, and the random part of every
            # embedding drowns what was learned (rt-polarity validation, conv3 + max pool, no bag:
            # ~62% from N(0, 1), ~77% from U(-1/d, 1/d)).
            with torch.no_grad():
                for table in (self.embed, self.position):
                    if table is not None:
                        table.weight.uniform_(-1.0 / d, 1.0 / d)
                self.embed.weight[0].zero_()
        self.pool = genome.pool
        self.bag = NgramBag(vocab_size, genome.ngram, genome.bag_dim, buckets, genome.dropout) if genome.ngram else None
        features = d + (genome.bag_dim if self.bag is not None else 0)
        self.head = nn.Linear(features, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = None
        if self.task == "classify":
            pad = x == 0
            pad[:, 0] = False  # an empty text still has one (padding) position to attend to
        h = self.embed(x)
        if self.position is not None:
            h = h + self.position(torch.arange(x.shape[1], device=x.device).clamp(max=self.position.num_embeddings - 1))
        h = self.drop(h)
        for block in self.blocks:
            h = block(h, pad)
        if pad is None:  # a language model: a prediction at every position, no pooling
            return self.head(h)
        keep = (~pad)[..., None]
        if self.pool == "max":
            pooled = h.masked_fill(~keep, float("-inf")).amax(dim=1)
        else:
            pooled = (h * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)
        if self.bag is not None:
            pooled = torch.cat([pooled, self.bag(x)], dim=1)
        return self.head(self.drop(pooled))
