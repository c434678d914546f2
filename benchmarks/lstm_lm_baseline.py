"""Baseline of the tinyshakespeare example: a 2-layer LSTM (2x256), windows of 128 characters,
batch 64, Adam 2e-3, trained for a fixed CPU time (one torch thread), then scored on the same
held-out text as nasforge: validation (first half of the last 10%), test (second half), and the
whole last 10%.

    python benchmarks/lstm_lm_baseline.py ../shared/data/text/tinyshakespeare_input.txt --cpu-seconds 600
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from nasforge.data.text import load_char_corpus
from nasforge.evaluate.language_model import lm_metrics


class CharLSTM(nn.Module):
    def __init__(self, vocab: int, width: int = 256, layers: int = 2):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.lstm = nn.LSTM(width, width, layers, batch_first=True)
        self.head = nn.Linear(width, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(self.embed(x))[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("text")
    parser.add_argument("--cpu-seconds", type=float, default=300.0)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    corpus = load_char_corpus(args.text)
    v = corpus.vocab_size
    model = CharLSTM(v)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(args.seed)
    offsets = torch.arange(args.seq_len + 1)
    start, steps = time.process_time(), 0
    while time.process_time() - start < args.cpu_seconds:
        starts = torch.randint(0, len(corpus.train) - args.seq_len - 1, (args.batch_size,), generator=gen)
        batch = corpus.train[starts[:, None] + offsets]
        loss = nn.functional.cross_entropy(model(batch[:, :-1]).reshape(-1, v), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        steps += 1
    trained = time.process_time() - start
    val = lm_metrics(model, corpus.val, args.seq_len, v)["loss"]
    test = lm_metrics(model, corpus.test, args.seq_len, v)["loss"]
    whole = lm_metrics(model, torch.cat([corpus.val, corpus.test]), args.seq_len, v)["loss"]
    print(f"LSTM 2x256: {steps} steps in {trained:.0f} CPU-s; loss (nats/char) val {val:.4f}, test {test:.4f}, last 10% {whole:.4f}")


if __name__ == "__main__":
    main()
