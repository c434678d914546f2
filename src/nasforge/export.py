"""Exports: trained weights + genome JSON + a standalone PyTorch source file, and loading them back;
optionally a TorchScript or ONNX file of the same network beside them.

Every export folder holds the PyTorch form (weights.pt, genome.json, model.py where the space builds
Plans); `format` adds `model.torchscript.pt` (torch.jit.load) or `model.onnx` (onnxruntime).
A study whose returned model is an ensemble (`training.final_ensemble`) exports it whole: genome.json
lists every member's genome and weights.pt holds them all (no model.py: each member is its own net).
Loading never unpickles arbitrary objects: weights are read with `weights_only=True`, the genome is
JSON, and the network is rebuilt from the genome by its search space.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from collections.abc import Sequence
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
TORCHSCRIPT_FILE = "model.torchscript.pt"
ONNX_FILE = "model.onnx"
FORMATS = ("pytorch", "torchscript", "onnx")
# Test samples a TorchScript trace and the ONNX check run on.
CHECK_BATCH = 64


class ExportError(NasforgeError):
    """A model cannot be exported in the requested form (missing optional package, exporter failure)."""


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    return torch.load(Path(path), map_location="cpu", weights_only=True)


def export_trial(run_dir: str | Path, out: str | Path, trial_id: int | None = None, format: str = "pytorch") -> Path:  # noqa: A002
    """Export one trial of a study (the study's final model when `trial_id` is None) into `out`.

    `format` "torchscript" or "onnx" adds that file to the PyTorch form; the example batch they are
    traced with comes from the study's own test split (see `real_batch`).
    """
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; choose from {', '.join(FORMATS)}")
    run_dir, out = Path(run_dir), Path(out)
    store = Store.in_dir(run_dir)
    try:
        final = store.get("final")
        # The final model of an ensembling study is the whole ensemble (final.pt holds every member);
        # `trial_id` names one network, which is then exported alone, from its own weights.
        member_ids = None
        if trial_id is None:
            if final is None:
                raise StoreError(f"{run_dir}: the search has not finished, so there is no best model yet; use --trial N")
            trial_id, weights, member_ids = final["trial"], run_dir / final["weights"], final.get("members")
        else:
            weights = run_dir / "weights" / f"trial_{trial_id:05d}.pt"
            if final is not None and final["trial"] == trial_id and not final.get("members"):
                weights = run_dir / final["weights"]
        is_final = final is not None and weights == run_dir / final["weights"]
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
            "test": final["test"] if is_final else None,
            "dataset": store.get("dataset"),
        }
        if member_ids:
            meta["members"] = [{"trial": i, "genome": store.trial(i).genome} for i in member_ids]
        if is_final and final.get("views"):
            meta["views"] = final["views"]  # the returned model averages over these (data.datasets.make_views)
    finally:
        store.close()
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(weights, out / WEIGHTS_FILE)
    (out / GENOME_FILE).write_text(json.dumps(meta, indent=2))
    model = _build(meta)
    if isinstance(model, PlanNet):
        norm = (meta["dataset"] or {}).get("normalization") or {}
        header = f"nasforge trial {trial_id}, validation reward {record.reward:.4f}"
        if norm.get("mean"):
            header += f"\nInputs must be normalised per channel: mean={norm['mean']}, std={norm['std']}"
        (out / SOURCE_FILE).write_text(plan_to_source(model.plan, header=header))
    if format != "pytorch":
        model.load_state_dict(load_weights(out / WEIGHTS_FILE))
        model.eval()
        example = real_batch(run_dir, meta, n=2)
        if format == "torchscript":
            _to_torchscript(model, example, out / TORCHSCRIPT_FILE)
        else:
            _to_onnx(model, example, out / ONNX_FILE)
    return out


def _build(meta: dict[str, Any]) -> nn.Module:
    """The untrained network of an export's metadata: one genome, or an Ensemble of its members'."""
    from .data.datasets import make_views
    from .ensemble import combine

    space = make_space(meta["space"], meta["space_config"])
    genomes = [m["genome"] for m in meta.get("members") or [meta]]
    return combine([space.build(space.from_json(g)) for g in genomes], make_views(meta.get("views")))


def real_batch(run_dir: str | Path, meta: dict[str, Any] | None = None, n: int = CHECK_BATCH) -> torch.Tensor:
    """Up to `n` samples of the study's test split, as the model saw them in training: normalised
    features for the layer and cell spaces, integer token ids for the sequence space (the first `n`
    test sentences, or for a language model the first `n` test windows of its context length).

    The data is loaded again the way the study loaded it (the stored config). When it cannot be
    (a user file that has moved), inputs of the right shape stand in: standard-normal features (the
    inputs the model sees are standardised, so that is the scale) or random token ids.
    """
    from .api import load_data_for
    from .config import parse_config
    from .data.text import CharCorpus
    from .evaluate.language_model import windows

    store = Store.in_dir(run_dir)
    try:
        config = store.get("config") or {}
        summary = store.get("dataset") or {}
    finally:
        store.close()
    space_config = (meta or {}).get("space_config") or {}
    try:
        data = load_data_for(parse_config(config))
        if isinstance(data, CharCorpus):
            x = windows(data.test, int(space_config.get("max_length") or config["dataset"].get("max_length") or 128))[0]
        else:
            x = data.x_test
        x = x[:n]
        # Token ids must stay integers (an embedding looks them up); features are float32.
        return x if not x.is_floating_point() else x.float()
    except (NasforgeError, KeyError, OSError):
        if space_config.get("vocab_size") and space_config.get("max_length"):
            shape = (n, int(space_config["max_length"]))
            # Ids 0 and 1 are padding and unknown; the rest stand for words or characters.
            return torch.randint(2, int(space_config["vocab_size"]), shape, generator=torch.Generator().manual_seed(0))
        shape = space_config.get("input_shape") or summary.get("input_shape")
        if not shape:
            raise ExportError(f"{run_dir}: cannot load the study's data nor find its input shape for an example batch") from None
        return torch.randn((n, *shape), generator=torch.Generator().manual_seed(0))


def _to_torchscript(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    # Tracing records the forward pass exactly; a Plan's forward has no data-dependent control flow.
    # torch >= 2.10 flags TorchScript as deprecated; it still loads everywhere torch does, which is
    # why users ask for it, so the warning is not passed on.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(model, example)
    traced.save(str(path))


def _to_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    try:
        import onnx  # noqa: F401 - the exporter needs it; fail early with an actionable message
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ExportError(f"ONNX export needs the 'export' extra ({exc.name} is missing): pip install 'nasforge[export]'") from exc
    batch = torch.export.Dim("batch", min=1)
    # The exporter logs a line for every torchvision op it cannot register; not our concern here.
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), str(path), input_names=["input"], output_names=["logits"],
                              dynamic_shapes={"x": {0: batch}}, dynamo=True, external_data=False, verbose=False)
    except Exception as exc:  # the exporter raises many types; the user needs the reason, not the class
        raise ExportError(f"ONNX export failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from exc
    finally:
        quiet.setLevel(level)


def check_export(folder: str | Path, batch: torch.Tensor) -> dict[str, float]:
    """Max abs difference between the exported PyTorch model and each other form in `folder`
    (TorchScript via torch.jit.load, ONNX via onnxruntime) on `batch`."""
    folder = Path(folder)
    reference = load(folder)
    with torch.no_grad():
        expected = reference(batch)
    diffs: dict[str, float] = {}
    if (folder / TORCHSCRIPT_FILE).exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            scripted = torch.jit.load(str(folder / TORCHSCRIPT_FILE), map_location="cpu")
        with torch.no_grad():
            diffs["torchscript"] = float((scripted(batch) - expected).abs().max())
    if (folder / ONNX_FILE).exists():
        try:
            import onnxruntime
        except ImportError as exc:
            raise ExportError("checking an ONNX export needs onnxruntime: pip install 'nasforge[export]'") from exc
        session = onnxruntime.InferenceSession(str(folder / ONNX_FILE), providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: batch.numpy()})[0]
        diffs["onnx"] = float(abs(torch.from_numpy(got) - expected).max())
    return diffs


def export_front(run_dir: str | Path, out: str | Path, format: str = "pytorch",  # noqa: A002
                 objectives: Sequence[str] | None = None) -> tuple[list[Path], list[str]]:
    """Export every model on the study's Pareto front into `out/trial_NNNNN/`.

    Returns the folders written and one line per front member that could not be exported (its
    weights were not kept). Raises when the study has fewer than two objectives.
    """
    from .objectives import pareto_front, study_objectives
    from .report.snapshot import read_run

    snap = read_run(run_dir)
    objs = list(objectives) if objectives else study_objectives(snap.config)
    if len(objs) < 2:
        raise NasforgeError(f"{run_dir}: --front needs a study with several objectives, and this one optimised "
                            f"{snap.reward_name} alone; export it with --best or --trial N")
    front = pareto_front(snap.trials, objs)
    if not front:
        raise NasforgeError(f"{run_dir}: no complete trial has values for all objectives ({', '.join(map(str, objs))})")
    written, skipped = [], []
    for trial in front:
        try:
            written.append(export_trial(run_dir, Path(out) / f"trial_{trial.id:05d}", trial.id, format=format))
        except StoreError as exc:
            skipped.append(f"trial {trial.id}: {exc}")
    if not written:
        raise StoreError(f"{run_dir}: none of the {len(front)} front models could be exported: " + "; ".join(skipped))
    return written, skipped


def load(path: str | Path) -> nn.Module:
    """A trained model from an export folder (or its genome.json), in eval mode."""
    path = Path(path)
    folder = path.parent if path.is_file() else path
    meta_path = folder / GENOME_FILE
    if not meta_path.exists():
        raise NasforgeError(f"{folder} is not a nasforge export (no {GENOME_FILE})")
    meta: dict[str, Any] = json.loads(meta_path.read_text())
    model = _build(meta)
    model.load_state_dict(load_weights(folder / WEIGHTS_FILE))
    return model.eval()
