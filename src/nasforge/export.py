"""Exports: trained weights + genome JSON + a standalone PyTorch source file, and loading them back.

Loading never unpickles arbitrary objects: weights are read with `weights_only=True`, the genome is
JSON, and the network is rebuilt from the genome by its search space.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import NasforgeError, StoreError
from .space import make_space
from .space.plan import PlanNet, plan_to_source
from .store import Store

GENOME_FILE = "genome.json"
WEIGHTS_FILE = "weights.pt"
SOURCE_FILE = "model.py"


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    return torch.load(Path(path), map_location="cpu", weights_only=True)


def export_trial(run_dir: str | Path, out: str | Path, trial_id: int | None = None) -> Path:
    """Export one trial of a study (the study's final model when `trial_id` is None)."""
    run_dir, out = Path(run_dir), Path(out)
    store = Store.in_dir(run_dir)
    try:
        final = store.get("final")
        if trial_id is None:
            if final is None:
                raise StoreError(f"{run_dir}: the search has not finished, so there is no best model yet; use --trial N")
            trial_id, weights = final["trial"], run_dir / final["weights"]
        else:
            weights = run_dir / "weights" / f"trial_{trial_id:05d}.pt"
            if final is not None and final["trial"] == trial_id:
                weights = run_dir / final["weights"]
        record = store.trial(trial_id)
        if record is None:
            raise StoreError(f"{run_dir}: no trial {trial_id}")
        if record.status != "complete":
            raise StoreError(f"trial {trial_id} did not complete (status {record.status}); nothing to export")
        if not weights.exists():
            raise StoreError(f"weights of trial {trial_id} were not kept (only the best keep_top trials are)")
        space_info = store.get("space")
        meta = {
            "format": "nasforge-export/1",
            "space": space_info["name"],
            "space_config": space_info["config"],
            "genome": record.genome,
            "trial": trial_id,
            "reward": record.reward,
            "metrics": {k: v for k, v in record.metrics.items() if k != "confusion"},
            "test": final["test"] if final and final["trial"] == trial_id else None,
            "dataset": store.get("dataset"),
        }
    finally:
        store.close()
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(weights, out / WEIGHTS_FILE)
    (out / GENOME_FILE).write_text(json.dumps(meta, indent=2))
    space = make_space(meta["space"], meta["space_config"])
    model = space.build(space.from_json(meta["genome"]))
    if isinstance(model, PlanNet):
        norm = (meta["dataset"] or {}).get("normalization") or {}
        header = f"nasforge trial {trial_id}, validation reward {record.reward:.4f}"
        if norm.get("mean"):
            header += f"\nInputs must be normalised per channel: mean={norm['mean']}, std={norm['std']}"
        (out / SOURCE_FILE).write_text(plan_to_source(model.plan, header=header))
    return out


def load(path: str | Path) -> nn.Module:
    """A trained model from an export folder (or its genome.json), in eval mode."""
    path = Path(path)
    folder = path.parent if path.is_file() else path
    meta_path = folder / GENOME_FILE
    if not meta_path.exists():
        raise NasforgeError(f"{folder} is not a nasforge export (no {GENOME_FILE})")
    meta: dict[str, Any] = json.loads(meta_path.read_text())
    space = make_space(meta["space"], meta["space_config"])
    model = space.build(space.from_json(meta["genome"]))
    model.load_state_dict(load_weights(folder / WEIGHTS_FILE))
    return model.eval()
