"""Your own training loop: a focal loss for an imbalanced task, scored by AUC, with pruning.

Which of scikit-learn's 8 x 8 digits is a nine? (10% of them are.) `evaluate(model, ctx)` trains each
candidate network its own way: a focal loss (Lin et al., 2017), which down-weights the many easy
negatives, AdamW, and the validation AUC reported every epoch; `ctx.report` feeds the learning curve
and lets the median rule stop hopeless candidates early. The search maximises the AUC the function
returns (`reward="auc"` reads it from the returned dict).

    python examples/own_training_focal_auc.py --trials 20 --epochs 8 --out runs/focal

Printed beside it: the same search with the built-in trainer (cross-entropy), on the same splits.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score

import nasforge


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Cross-entropy weighted by (1 - p_true)^gamma: confident, right predictions count for little."""
    log_p = torch.log_softmax(logits, dim=1).gather(1, target[:, None])[:, 0]
    return (-(1 - log_p.exp()) ** gamma * log_p).mean()


@torch.no_grad()
def validation_auc(model: torch.nn.Module, ctx: nasforge.Context) -> float:
    model.eval()
    scores, truth = [], []
    for x, y in ctx.val:
        scores.append(torch.softmax(model(x), dim=1)[:, 1].cpu())
        truth.append(y.cpu())
    return float(roc_auc_score(torch.cat(truth).numpy(), torch.cat(scores).numpy()))


def evaluate(model: torch.nn.Module, ctx: nasforge.Context) -> dict[str, float]:
    """Train `model` (already on ctx.device) for ctx.epochs epochs; return its validation AUC."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    auc = 0.5
    for epoch in range(1, ctx.epochs + 1):
        model.train()
        for x, y in ctx.train:  # one epoch, in a new order seeded by the trial
            loss = focal_loss(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        auc = validation_auc(model, ctx)
        ctx.report(epoch, {"auc": auc})  # may raise nasforge.TrialPruned: let it through
    return {"auc": auc}


def main(argv: list[str] | None = None) -> tuple[nasforge.Study, nasforge.Study]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--out", default="runs/focal")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    digits = load_digits()
    x, y = digits.images, (digits.target == 9).astype(np.int64)
    common = dict(reward="auc", trials=args.trials, epochs=args.epochs, batch_size=64, max_blocks=3, channels=(8, 16, 32),
                  dense_units=(32, 64), strategy="evolution", population=6, sample_size=2, seed=args.seed, progress=False)
    own = nasforge.search(data=(x, y), evaluate=evaluate, early_stop="median", early_stop_min_trials=3,
                          out=f"{args.out}/own", **common)
    builtin = nasforge.search(data=(x, y), out=f"{args.out}/builtin", **common)
    pruned = sum(t.status == "pruned" for t in own.trials)
    print(f"positives: {y.mean():.1%} of {len(y)} digits")
    print(f"own loop, focal loss     validation AUC {own.best.reward:.4f}  test AUC {own.final['test']['auc']:.4f}  "
          f"({pruned} of {len(own.trials)} trials pruned by the median rule)")
    print(f"built-in, cross-entropy  validation AUC {builtin.best.reward:.4f}  test AUC {builtin.final['test']['auc']:.4f}")
    return own, builtin


if __name__ == "__main__":
    main()
