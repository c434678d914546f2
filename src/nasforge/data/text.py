"""Text: a tokenizer and vocabulary built from the training split (nothing downloaded), the
rt-polarity sentence-classification dataset and character corpora for language modelling.

Token ids: 0 is padding, 1 stands for anything the training split never showed (unknown); the
vocabulary is ordered by training frequency, ties alphabetically, so it is the same on every run.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .dataset import Dataset

PAD, UNK = "<pad>", "<unk>"
# Words keep inner apostrophes, hyphens and slashes ("century's", "co-writer/director");
# every other non-space character is a token of its own.
WORD = re.compile(r"\w[\w'\-/]*|[^\w\s]")
LEVELS = ("word", "char")


class Tokenizer:
    """Text <-> ids over a fixed vocabulary, at word or character level."""

    def __init__(self, vocab: Sequence[str], level: str = "word"):
        if level not in LEVELS:
            raise DataError(f"tokenizer level must be one of {LEVELS}, got {level!r}")
        if list(vocab[:2]) != [PAD, UNK]:
            raise DataError(f"a vocabulary starts with {PAD!r}, {UNK!r}")
        if len(set(vocab)) != len(vocab):
            raise DataError("a vocabulary lists every token once")
        self.vocab = list(vocab)
        self.level = level
        self.index = {t: i for i, t in enumerate(self.vocab)}

    @classmethod
    def fit(cls, texts: Iterable[str], level: str = "word", min_freq: int = 1, max_size: int | None = None) -> Tokenizer:
        """The vocabulary of `texts` (the training split): tokens seen at least `min_freq` times,
        the `max_size` most frequent at most (specials included)."""
        counts = Counter(tok for text in texts for tok in cls.split(text, level))
        ranked = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[: max(0, max_size - 2)]
        return cls([PAD, UNK, *ranked], level)

    @staticmethod
    def split(text: str, level: str = "word") -> list[str]:
        return WORD.findall(text.lower()) if level == "word" else list(text)

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        unk = self.index[UNK]
        return [self.index.get(t, unk) for t in self.split(text, self.level)]

    def decode(self, ids: Iterable[int]) -> str:
        """Inverse of encode for text the vocabulary covers: characters joined as they were, words
        joined by single spaces (the tokenized form); padding is dropped."""
        tokens = [self.vocab[int(i)] for i in ids if int(i) != 0]
        return ("" if self.level == "char" else " ").join(tokens)

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, "vocab": self.vocab}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tokenizer:
        return cls(data["vocab"], data["level"])


def pad_batch(sequences: Sequence[Sequence[int]], max_length: int) -> np.ndarray:
    """N x L int64 array (L = the longest sequence, at most max_length), truncated and zero-padded."""
    length = max(1, min(max_length, max((len(s) for s in sequences), default=1)))
    out = np.zeros((len(sequences), length), dtype=np.int64)
    for i, s in enumerate(sequences):
        s = list(s)[:length]
        out[i, : len(s)] = s
    return out


@dataclass
class TextDataset(Dataset):
    """A classification Dataset whose x are N x L token ids (0 = padding), with its tokenizer."""

    tokenizer: Tokenizer | None = None

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        out["tokenizer"] = self.tokenizer.to_json() if self.tokenizer else None
        return out


def _shuffled_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) indices: a permutation with `seed`, the first `fraction` held out."""
    order = np.random.default_rng(seed).permutation(n)
    cut = int(round(n * fraction))
    return np.sort(order[cut:]), np.sort(order[:cut])


def polarity_files(path: str | Path) -> tuple[Path, Path]:
    """rt-polarity.pos / .neg from a folder holding them or from their common path prefix."""
    path = Path(path).expanduser()
    prefix = path / "rt-polarity" if path.is_dir() else path.with_suffix("") if path.suffix in (".pos", ".neg") else path
    pos, neg = prefix.with_name(prefix.name + ".pos"), prefix.with_name(prefix.name + ".neg")
    for f in (pos, neg):
        if not f.is_file():
            raise DataError(f"rt-polarity: file not found: {f} (give the folder holding rt-polarity.pos and rt-polarity.neg)")
    return pos, neg


def read_lines(path: Path) -> list[str]:
    # The corpus is UTF-8 here; older copies are Latin-1, which must not stop a search.
    return [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]


def polarity_sentences(path: str | Path) -> tuple[list[str], np.ndarray]:
    """All sentences (positive first) and labels (1 = positive, 0 = negative)."""
    pos, neg = polarity_files(path)
    p, n = read_lines(pos), read_lines(neg)
    return p + n, np.array([1] * len(p) + [0] * len(n), dtype=np.int64)


def polarity_splits(n: int, test_fraction: float = 0.1, val_fraction: float = 0.1, seed: int = 0) -> dict[str, np.ndarray]:
    """Indices of train / val / test: test is `test_fraction` of a shuffle with `seed` (seed 0, 10%:
    the split the baselines are measured on), val is `val_fraction` of the rest."""
    rest, test = _shuffled_split(n, test_fraction, seed)
    keep, val = _shuffled_split(len(rest), val_fraction, seed + 1)
    return {"train": rest[keep], "val": rest[val], "test": test}


def load_polarity(path: str | Path, test_fraction: float = 0.1, val_fraction: float = 0.1, seed: int = 0,
                  max_length: int = 64, min_freq: int = 1) -> TextDataset:
    """rt-polarity as token-id tensors; the vocabulary comes from the training split only."""
    texts, labels = polarity_sentences(path)
    idx = polarity_splits(len(texts), test_fraction, val_fraction, seed)
    tokenizer = Tokenizer.fit((texts[i] for i in idx["train"]), "word", min_freq=min_freq)

    def part(name: str) -> tuple[torch.Tensor, torch.Tensor]:
        ids = [tokenizer.encode(texts[i]) for i in idx[name]]
        return torch.from_numpy(pad_batch(ids, max_length)), torch.from_numpy(labels[idx[name]])

    (xtr, ytr), (xv, yv), (xte, yte) = part("train"), part("val"), part("test")
    return TextDataset(name="rt-polarity", x_train=xtr, y_train=ytr, x_val=xv, y_val=yv, x_test=xte, y_test=yte,
                       num_classes=2, classes=["negative", "positive"], tokenizer=tokenizer)


@dataclass
class CharCorpus:
    """A character stream split in order: train, then validation (selection), then test (reported)."""

    name: str
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    tokenizer: Tokenizer
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": "language_model",
            "sizes": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
            "tokenizer": self.tokenizer.to_json(),
        }


def load_char_corpus(path: str | Path, held_out: float = 0.1, name: str | None = None) -> CharCorpus:
    """The first 1 - held_out of the text trains; the rest is halved into validation and test, so the
    reported loss is on text the search never selected on. Characters come from the training part."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"text corpus not found: {path}")
    text = path.read_text(encoding="utf-8", errors="replace")
    if len(text) < 1000:
        raise DataError(f"{path}: {len(text)} characters is too little text to model")
    if not 0 < held_out < 1:
        raise DataError(f"held-out fraction must lie in (0, 1), got {held_out}")
    cut = int(len(text) * (1 - held_out))
    mid = cut + (len(text) - cut) // 2
    tokenizer = Tokenizer.fit(text[:cut], "char")

    def ids(s: str) -> torch.Tensor:
        return torch.tensor(tokenizer.encode(s), dtype=torch.long)

    return CharCorpus(name or path.name, ids(text[:cut]), ids(text[cut:mid]), ids(text[mid:]), tokenizer)
