"""ENAS (Pham et al., 2018): the shared weights trained alternately with the controller.

ENAS alternates two phases: (1) the shared weights w are trained on minibatches, each through an
architecture sampled from the current controller policy; (2) the controller is trained by REINFORCE
on rewards measured with w fixed. Here the controller is the `reinforce` strategy (LSTM or independent
logits) and phase (2) is the study's ask / tell loop; this evaluator does phase (1) every
`shared_every` queries: `shared_steps` minibatches, each through one of the architectures the
controller asked for since the last phase (its samples, as in ENAS, one phase old), then goes on
scoring with the new w. ENAS ran one pass over the data (~400 steps) of w per 2,000 controller steps;
shared_steps / shared_every sets that ratio.

The supernet may first be trained with uniform paths (supernet_epochs, as in SPOS) or start from its
initialisation (0, as in ENAS). After every phase the weights, the optimiser and the query count are
checkpointed in the run directory; a killed search resumes from the last phase (the queries after it
are in the store and are not repeated, but they train w only from the next phase on).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...space.base import Genome
from ..evaluator import Result, Warmstart
from .evaluator import OneShotEvaluator
from .training import SupernetError

ENAS_CHECKPOINT = Path("supernet") / "enas.pt"


class EnasEvaluator(OneShotEvaluator):
    def __init__(self, *args: Any, shared_steps: int = 50, shared_every: int = 10, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if shared_steps < 1 or shared_every < 1:
            raise ValueError(f"shared_steps and shared_every must be >= 1, got {shared_steps} and {shared_every}")
        self.shared_steps, self.shared_every = shared_steps, shared_every
        self.queries, self.phases = 0, 0
        self.recent: list[Genome] = []
        self.checkpoint: Path | None = None
        self.optimizer: torch.optim.Optimizer | None = None

    def prepare(self, run_dir: str | Path | None = None, log: Callable[[str], None] | None = None) -> None:
        if self.net is not None:
            return
        super().prepare(run_dir, log)
        s = self.supernet_options
        self.optimizer = torch.optim.AdamW(self.supernet.parameters(), lr=s.lr, weight_decay=s.weight_decay)
        self.checkpoint = Path(run_dir) / ENAS_CHECKPOINT if run_dir is not None else None
        if self.checkpoint is not None and self.checkpoint.exists():
            saved = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
            if saved.get("signature") != self.signature():
                raise SupernetError(f"{self.checkpoint} belongs to another space or data; remove it to start afresh")
            self.supernet.load_state_dict(saved["model"])
            self.shared_optimizer.load_state_dict(saved["optimizer"])
            self.queries, self.phases = int(saved["queries"]), int(saved["phases"])
            if log:
                log(f"enas: resuming after {self.phases} shared-weight phases ({self.queries} queries)")

    @property
    def shared_optimizer(self) -> torch.optim.Optimizer:
        self.prepare()
        if self.optimizer is None:  # prepare() sets it
            raise RuntimeError("the shared weights were not prepared")
        return self.optimizer

    def evaluate(self, genome: Genome, seed: int, epochs: int | None = None, warmstart: Warmstart | None = None,
                 prune_below: dict[int, float] | None = None) -> Result:
        self.prepare()
        if self.recent and self.queries % self.shared_every == 0:
            self._train_shared()
        self.recent.append(genome)
        self.queries += 1
        return super().evaluate(genome, seed, epochs, warmstart, prune_below)

    def _train_shared(self) -> None:
        """Phase (1): `shared_steps` minibatches, each through one of the recently asked paths."""
        self.phases += 1
        s, data = self.supernet_options, self.data
        seed = (self.seed * 1_000_003 + self.phases) % (2**63)
        generator = torch.Generator().manual_seed(seed)
        rng = np.random.default_rng(seed)
        self.supernet.train()
        for _ in range(self.shared_steps):
            idx = torch.randint(len(data.x_train), (s.batch_size,), generator=generator)
            batch = data.x_train[idx] if data.augment is None else data.augment(data.x_train[idx], generator)
            self.supernet.activate(self.recent[int(rng.integers(len(self.recent)))])
            logits = self.supernet(batch.to(self.device))
            loss = nn.functional.cross_entropy(logits, data.y_train[idx].to(self.device), label_smoothing=s.label_smoothing)
            if not torch.isfinite(loss):
                raise SupernetError(f"shared-weight training diverged in phase {self.phases}; lower the learning rate")
            self.shared_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.shared_optimizer.step()
        self.supernet.eval()
        self.recent = []
        if self.checkpoint is not None:
            self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.checkpoint.with_suffix(".tmp")
            torch.save({"signature": self.signature(), "model": self.supernet.state_dict(), "optimizer": self.shared_optimizer.state_dict(),
                        "queries": self.queries, "phases": self.phases}, tmp)
            tmp.replace(self.checkpoint)
