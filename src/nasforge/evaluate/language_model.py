"""Language-model evaluation: train a causal network on next-token prediction over a token stream,
score it by the mean next-token cross-entropy (nats per token) on held-out text.

Training draws `batch_size` random windows of `seq_len + 1` tokens per step; an "epoch" here is
`steps_per_epoch` steps (a corpus pass would be far too long to be the unit of a search). Held-out
text is scored in consecutive non-overlapping windows, each starting from an empty context.

Metrics: loss (nats/token, what the reward `neg_loss` negates), bits_per_token, perplexity, and
next-token accuracy / macro precision / recall / F1, so leaderboards read as for classifiers.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.text import CharCorpus
from ..errors import DataError, TrialFailure
from ..space.base import Genome, SearchSpace
from .accelerator import DeviceRun, PeakMemory, backward_step, run_compiled, scaled_steps
from .cost import count_params
from .evaluator import CANDIDATE_ERRORS, Evaluator, Result, Warmstart, failed, hard_limit, released
from .footprint import check as check_footprint
from .metrics import REWARDS, classification_metrics
from .trainer import TrainingOptions, TrainingOutcome, model_device, resolve_device

# Gradient-norm clip: recurrent and attention stacks on long windows blow up without one.
CLIP = 1.0
# What lm_metrics computes (next-token classification scores and the loss).
LM_REWARDS = ("neg_loss", "accuracy", "precision", "recall", "f1")


def windows(stream: torch.Tensor, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Consecutive non-overlapping (input, next-token target) windows of a held-out stream."""
    n = (len(stream) - 1) // seq_len
    if n < 1:
        raise ValueError(f"held-out text of {len(stream)} tokens is shorter than one window of {seq_len}")
    return stream[: n * seq_len].view(n, seq_len), stream[1 : n * seq_len + 1].view(n, seq_len)


@torch.no_grad()
def lm_metrics(model: nn.Module, stream: torch.Tensor, seq_len: int, vocab_size: int, batch_size: int = 64,
               precision: str = "32") -> dict[str, Any]:
    model.eval()
    device = model_device(model)
    run = DeviceRun(device, precision)
    x, y = windows(stream, seq_len)
    total, preds = 0.0, []
    for i in range(0, len(x), batch_size):
        with run.autocast():
            logits = model(x[i : i + batch_size].to(device))
        total += float(nn.functional.cross_entropy(logits.float().reshape(-1, vocab_size),
                                                   y[i : i + batch_size].to(device).reshape(-1), reduction="sum"))
        preds.append(logits.argmax(-1).reshape(-1).cpu())
    loss = total / y.numel()
    metrics = classification_metrics(y.reshape(-1).numpy(), torch.cat(preds).numpy(), vocab_size, loss)
    metrics.pop("confusion")  # vocabulary x vocabulary: too big to keep per trial, and unread
    metrics.update(bits_per_token=loss / math.log(2), perplexity=math.exp(min(loss, 50.0)), tokens=int(y.numel()))
    return metrics


def train_lm(model: nn.Module, stream: torch.Tensor, options: TrainingOptions, seed: int, steps: int, seq_len: int,
             vocab_size: int, steps_per_epoch: int, cpu_seconds: float | None = None) -> TrainingOutcome:
    """AdamW (+ cosine) on random windows for `steps` steps, or, given `cpu_seconds`, until the process
    has spent that much CPU time on it (cosine then anneals over the elapsed fraction of it).
    Raises TrialFailure on NaN loss, divergence or the time limit."""
    if len(stream) <= seq_len + 1:
        raise ValueError(f"training text of {len(stream)} tokens is shorter than one window of {seq_len + 1}")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    device = model_device(model)
    stream = stream.to(device)  # once per candidate: windows are gathered on the device
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    timed = cpu_seconds is not None
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps) if options.cosine and not timed else None
    offsets = torch.arange(seq_len + 1, device=device)
    run = DeviceRun(device, options.precision)
    scaler = run.scaler()
    outcome = TrainingOutcome()
    start, cpu_start = time.perf_counter(), time.process_time()
    deadline = start + options.time_limit if options.time_limit else math.inf
    model.train()
    total, first = torch.zeros((), device=device), None
    step, last = 0, False
    with scaled_steps(scaler):
        while not last:
            step += 1
            if cpu_seconds is not None:
                elapsed = time.process_time() - cpu_start
                last = elapsed >= cpu_seconds
                if options.cosine:
                    for group in optimizer.param_groups:
                        group["lr"] = 0.5 * options.lr * (1 + math.cos(math.pi * min(1.0, elapsed / cpu_seconds)))
            else:
                last = step == steps
            starts = torch.randint(0, len(stream) - seq_len - 1, (options.batch_size,), generator=generator).to(device)
            batch = stream[starts[:, None] + offsets]
            with run.autocast():  # forward and loss only
                logits = model(batch[:, :-1])
                loss = nn.functional.cross_entropy(logits.reshape(-1, vocab_size), batch[:, 1:].reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            backward_step(loss, optimizer, scaler, clip=(model.parameters(), CLIP))
            if scheduler is not None:
                scheduler.step()
            total += loss.detach()
            if time.perf_counter() > deadline:
                raise TrialFailure(f"time limit of {options.time_limit:g}s exceeded at step {step}")
            if step % steps_per_epoch == 0 or last:
                n = step % steps_per_epoch or steps_per_epoch
                train_loss = float(total) / n
                total = torch.zeros((), device=device)
                if not math.isfinite(train_loss):
                    raise TrialFailure(f"training loss became {train_loss} at step {step}")
                first = first if first is not None else train_loss
                if train_loss > options.divergence_factor * max(first, 1e-3):
                    raise TrialFailure(f"training diverged: loss {train_loss:.3g} at step {step} (first {first:.3g})")
                outcome.curve.append({"epoch": math.ceil(step / steps_per_epoch), "step": step, "train_loss": train_loss,
                                      "cpu_seconds": time.process_time() - cpu_start})
    outcome.seconds = time.perf_counter() - start
    outcome.samples = step * options.batch_size
    return outcome


class LanguageModelEvaluator(Evaluator):
    """Builds a causal candidate, trains it on the corpus's training text, scores it on validation text."""

    def __init__(self, space: SearchSpace, data: CharCorpus, training: TrainingOptions, reward: str = "neg_loss",
                 seq_len: int = 128, steps_per_epoch: int = 100):
        if reward not in LM_REWARDS:
            raise ValueError(f"reward {reward!r} does not apply to language models; choose from {', '.join(LM_REWARDS)}")
        if seq_len < 1 or steps_per_epoch < 1:
            raise ValueError("seq_len and steps_per_epoch must be positive")
        self.space, self.data, self.training, self.reward = space, data, training, reward
        self.seq_len, self.steps_per_epoch = seq_len, steps_per_epoch
        # Every trial is scored on validation windows and the returned model on test windows: a
        # held-out text shorter than one window would fail them all, so say so before the search.
        for split, stream in (("validation", data.val), ("test", data.test)):
            if len(stream) <= seq_len:
                raise DataError(f"the {split} text has {len(stream)} characters, not enough for one window of {seq_len} "
                                "(the last 10% of the corpus is held out): give a longer corpus or a smaller dataset.max_length")

    @property
    def wants_gpu(self) -> bool:
        return self.training.device in ("auto", "cuda")

    def stop_after(self) -> float | None:
        return hard_limit(self.training.time_limit)

    def _train(self, model: nn.Module, seed: int, epochs: int | None, stream: torch.Tensor | None = None,
               timed: bool = True) -> TrainingOutcome:
        """On `stream` (default: the training text), for `epochs` (default: the options') of
        `steps_per_epoch` steps. With a CPU-time budget (training.cpu_seconds) and `timed`, a candidate
        trains in units of it instead: one unit, or `epochs` units when given (a successive-halving rung,
        so rungs of 1, 3, 9 are 60, 180, 540 CPU-seconds for a 60-second budget). The final retrain
        (`timed=False`) counts steps."""
        steps = (epochs or self.training.epochs) * self.steps_per_epoch
        budget = (epochs or 1) * self.training.cpu_seconds if timed and self.training.cpu_seconds is not None else None
        return train_lm(model, self.data.train if stream is None else stream, self.training, seed, steps, self.seq_len,
                        self.data.vocab_size, self.steps_per_epoch, cpu_seconds=budget)

    def evaluate(self, genome: Genome, seed: int, epochs: int | None = None, warmstart: Warmstart | None = None,
                 prune_below: dict[int, float] | None = None) -> Result:
        """As TrainingEvaluator; a warm start from the candidate's own weights continues training them,
        one from another genome's is ignored (weights do not carry across sequence genomes), and
        `prune_below` is ignored (an LM epoch has no validation score to prune on)."""
        return released(self._evaluate(genome, seed, epochs, warmstart))

    def _evaluate(self, genome: Genome, seed: int, epochs: int | None, warmstart: Warmstart | None) -> Result:
        start = time.perf_counter()
        params = None
        device = resolve_device(self.training.device)  # training.device, as for every evaluator
        where: dict[str, Any] = DeviceRun(device, self.training.precision).describe()
        peak = PeakMemory(device)
        try:
            example = torch.zeros((1, self.seq_len), dtype=torch.long)
            # Checked against the memory of the device the model trains on (training.device).
            footprint, too_large = check_footprint(self.space, genome, example, self.training.batch_size, self.training.memory_limit,
                                                   device)
            if too_large is not None:
                return Result("failed", metrics=dict(where), params=footprint.params if footprint is not None else None,
                              train_seconds=time.perf_counter() - start, error=too_large)
            torch.manual_seed(seed)
            model = self.space.build(genome)
            params = count_params(model)
            if warmstart is not None and warmstart.parent is None:
                model.load_state_dict(warmstart.state_dict)
            model.to(device)
            outcome = self._train(model, seed, epochs)
            metrics = {**self.validate(model), **where, "peak_memory_mb": peak.mb()}
            metrics["train_cpu_seconds"] = outcome.curve[-1]["cpu_seconds"] if outcome.curve else 0.0
        except CANDIDATE_ERRORS as exc:
            return failed(exc, params, start, {**where, "peak_memory_mb": peak.mb()})
        return Result("complete", reward=float(REWARDS[self.reward](metrics)), metrics=metrics, params=params,
                      train_seconds=outcome.seconds, curve=outcome.curve,
                      state_dict={k: v.detach().cpu().clone() for k, v in model.state_dict().items()})

    def retrain(self, model: nn.Module, seed: int, epochs: int, genome: Genome | None = None,
                with_validation: bool = False) -> None:
        """`with_validation`: on the training text followed by the validation text (they are contiguous)."""
        model.to(resolve_device(self.training.device))
        stream = torch.cat([self.data.train, self.data.val]) if with_validation else None

        def fit(net: nn.Module) -> None:
            self._train(net, seed, epochs, stream, timed=False)

        if self.training.final_compile:
            run_compiled(model, fit)
        else:
            fit(model)
        model.cpu()

    def validate(self, model: nn.Module) -> dict[str, Any]:
        return lm_metrics(model, self.data.val, self.seq_len, self.data.vocab_size, precision=self.training.precision)

    def test(self, model: nn.Module) -> dict[str, Any]:
        """Loss on the test text: called once, for the final model, never for selection."""
        model.to(resolve_device(self.training.device))
        try:
            return lm_metrics(model, self.data.test, self.seq_len, self.data.vocab_size, precision=self.training.precision)
        finally:
            model.cpu()


def generate(model: nn.Module, prompt: list[int], length: int, seq_len: int, temperature: float = 1.0, seed: int = 0) -> list[int]:
    """Sample `length` tokens after `prompt` (for looking at what a found model has learned)."""
    rng = np.random.default_rng(seed)
    ids = list(prompt)
    model.eval()
    with torch.no_grad():
        for _ in range(length):
            logits = model(torch.tensor([ids[-seq_len:]]))[0, -1] / max(temperature, 1e-6)
            p = torch.softmax(logits.double(), -1).numpy()
            ids.append(int(rng.choice(len(p), p=p / p.sum())))
    return ids
