"""Exports: trained weights + genome JSON + a standalone PyTorch source file, and loading them back;
optionally a TorchScript or ONNX file of the same network beside them.

Every export folder holds the PyTorch form (weights.pt, genome.json, model.py where the space builds
Plans); `format` adds `model.torchscript.pt` (torch.jit.load) or `model.onnx` (onnxruntime), for
any space, the user's own included: those two need neither nasforge nor the code that built the
network. They are traced with the example input the run kept (example.py).
A study whose returned model is an ensemble (`training.final_ensemble`) exports it whole: genome.json
lists every member's genome and weights.pt holds them all (no model.py: each member is its own net).
Loading an export back (`load`, `check_export`) and the folder's format are in exported.py.

An export is written into a temporary folder beside `out` and renamed into place: a crash or a
full disk leaves no half export under the real name. It reads the run's store read-only.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import NasforgeError, NasforgeWarning, StoreError, WriteFailed
from .example import load_example
from .exported import (  # noqa: F401 - the folder's format and load / check_export, importable from here as before
    CHECK_BATCH,
    FORMATS,
    GENOME_FILE,
    ONNX_FILE,
    SOURCE_FILE,
    TORCHSCRIPT_FILE,
    WEIGHTS_FILE,
    DamagedExport,
    ExportError,
    build_exported,
    check_export,
    load,
)
from .rundir import check_folder, describe_os_error, is_write_failure, load_weights, make_folder
from .space.plan import PlanNet, plan_to_source
from .store import Store


def export_trial(run_dir: str | Path, out: str | Path, trial_id: int | None = None, format: str = "pytorch",  # noqa: A002
                 space: Any = None) -> Path:
    """Export one trial of a study (the study's final model when `trial_id` is None) into `out`.

    `format` "torchscript" or "onnx" adds that file to the PyTorch form; the example batch they are
    traced with is the run's example input (see `example_batch`). `space`: the run's model function
    (or space class / instance) where it cannot be imported here (space/resolve.py).
    """
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; choose from {', '.join(FORMATS)}")
    run_dir = Path(run_dir)
    out = check_folder(out, "out")
    _check_replaceable(out)
    store = Store.in_dir(run_dir)  # read-only
    try:
        final = store.get("final")
        retrains = bool(((store.get("config") or {}).get("training") or {}).get("final_epochs"))
        note = None
        # The final model of an ensembling study is the whole ensemble (final.pt holds every member);
        # `trial_id` names one network, which is then exported alone, from its own weights.
        member_ids = None
        if trial_id is None:
            if final is None:
                raise StoreError(f"{run_dir}: the search has not finished, so there is no best model yet; use --trial N")
            trial_id, weights, member_ids = final["trial"], run_dir / final["weights"], final.get("members")
            if not weights.exists():
                weights, note = _without_final(run_dir, final, retrains)
                member_ids = None
        else:
            weights = run_dir / "weights" / f"trial_{trial_id:05d}.pt"
            if final is not None and final["trial"] == trial_id and not final.get("members") and (run_dir / final["weights"]).exists():
                weights = run_dir / final["weights"]
        # The final model's test scores belong to what is exported when it is the final model itself, or
        # the trial's own weights that the final model was made of (no retraining, no views).
        is_final = final is not None and (weights == run_dir / final["weights"] or (
            note is not None and not retrains and not final.get("views")))
        record = store.trial(trial_id)
        if record is None:
            raise StoreError(f"{run_dir}: no trial {trial_id}")
        if record.status != "complete":
            raise StoreError(f"trial {trial_id} did not complete (status {record.status}); nothing to export")
        if not weights.exists():
            raise StoreError(f"the weights of trial {trial_id} were not kept: {weights.parent} holds those of the best "
                             f"keep_top={(store.get('config') or {}).get('keep_top', '?')} trials (and of any the search still needed)")
        space_info = store.get("space")
        if not space_info:
            raise StoreError(f"{run_dir}: the run records no search space, so its networks cannot be rebuilt")
        meta = {
            "format": "nasforge-export/1",
            "space": space_info["name"],
            "space_config": space_info["config"],
            **({"space_class": space_info["class"]} if space_info.get("class") else {}),
            "genome": record.genome,
            "trial": trial_id,
            "reward": record.reward,
            "metrics": {k: v for k, v in record.metrics.items() if k != "confusion"},
            "test": final["test"] if is_final else None,
            "dataset": store.get("dataset"),
            **({"note": note} if note else {}),
        }
        if member_ids:
            meta["members"] = [{"trial": i, "genome": store.require_trial(i).genome} for i in member_ids]
        if is_final and final.get("views"):
            meta["views"] = final["views"]  # the returned model averages over these (data.datasets.make_views)
    finally:
        store.close()
    if note:
        warnings.warn(note, NasforgeWarning, stacklevel=2)
    make_folder(out.parent, "out")
    _remove_stale(out)
    partial = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        partial.mkdir()
        _write_export(partial, run_dir, meta, weights, record.reward, trial_id, format, space)
        _replace_folder(partial, out)
    except BaseException as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if is_write_failure(exc):
            raise WriteFailed(f"cannot write the export {out}: {describe_os_error(exc)}; nothing was written there") from exc
        raise
    return out


def _without_final(run_dir: Path, final: dict[str, Any], retrains: bool) -> tuple[Path, str]:
    """The weights to export, and what to tell the user, when the study's final.pt has gone."""
    trial_id = final["trial"]
    resume = f"rebuild it with: nasforge search --resume --out {run_dir}"
    if final.get("members") or final.get("views"):
        what = "ensemble" if final.get("members") else "model with its test-time views"
        raise StoreError(f"{run_dir / final['weights']} (the returned {what}) is missing; {resume}")
    own = run_dir / "weights" / f"trial_{trial_id:05d}.pt"
    if not own.exists():
        raise StoreError(f"{run_dir / final['weights']} is missing, and so are the weights of trial {trial_id}; {resume}")
    if retrains:
        return own, (f"{run_dir / final['weights']} is missing: exported trial {trial_id}'s own search weights instead, not the "
                     f"returned model (which was retrained after the search; {resume})")
    return own, (f"{run_dir / final['weights']} is missing: exported trial {trial_id}'s own weights, which the returned "
                 f"model is (the study does not retrain); {resume}")


def _remove_stale(out: Path) -> None:
    """Temporary folders of earlier exports to `out` whose process is gone (killed midway)."""
    for folder in [*out.parent.glob(f".{out.name}.partial-*"), *out.parent.glob(f".{out.name}.old-*")]:
        pid = folder.name.rsplit("-", 1)[1]
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _check_replaceable(out: Path) -> None:
    """An existing `out` is replaced only when it is empty or an earlier export (never a folder of other files)."""
    if out.is_dir() and any(out.iterdir()) and not (out / GENOME_FILE).exists():
        raise ExportError(f"out: {out} exists and is not a nasforge export; choose a new folder (an earlier export "
                          "there would be replaced)")


def _replace_folder(new: Path, out: Path) -> None:
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        os.replace(new, out)  # rename(2): onto nothing, or onto an empty folder
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    shutil.rmtree(old, ignore_errors=True)
    os.replace(out, old)
    os.replace(new, out)
    shutil.rmtree(old, ignore_errors=True)


def _write_export(folder: Path, run_dir: Path, meta: dict[str, Any], weights: Path, reward: float | None, trial_id: int,
                  format: str, space: Any) -> None:  # noqa: A002
    shutil.copyfile(weights, folder / WEIGHTS_FILE)
    (folder / GENOME_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    model = build_exported(meta, space)
    if isinstance(model, PlanNet):
        norm = (meta["dataset"] or {}).get("normalization") or {}
        header = f"nasforge trial {trial_id}, validation reward {reward:.4f}"
        if norm.get("mean"):
            header += f"\nInputs must be normalised per channel: mean={norm['mean']}, std={norm['std']}"
        targets = (meta["dataset"] or {}).get("target_normalization") or {}
        if targets.get("mean"):
            header += (f"\nOutputs are standardised regression targets: prediction = output * {targets['std']} "
                       f"+ {targets['mean']} (per target)")
        (folder / SOURCE_FILE).write_text(plan_to_source(model.plan, header=header), encoding="utf-8")
    if format != "pytorch":
        model.load_state_dict(load_weights(folder / WEIGHTS_FILE))
        model.eval()
        example = example_batch(run_dir, meta, n=2)
        if format == "torchscript":
            _to_torchscript(model, example, folder / TORCHSCRIPT_FILE)
        else:
            _to_onnx(model, example, folder / ONNX_FILE)


def example_batch(run_dir: str | Path, meta: dict[str, Any] | None = None, n: int = CHECK_BATCH) -> torch.Tensor:
    """Up to `n` inputs to trace and check exports with: the example the run kept when it was made
    (example.py), or for an older run that has none, samples of its data loaded again (`real_batch`)."""
    kept = load_example(run_dir, n)
    return kept if kept is not None else real_batch(run_dir, meta, n)


def real_batch(run_dir: str | Path, meta: dict[str, Any] | None = None, n: int = CHECK_BATCH) -> torch.Tensor:
    """Up to `n` samples of the study's test split, as the model saw them in training: normalised
    features for the layer and cell spaces, integer token ids for the sequence space (the first `n`
    test sentences, or for a language model the first `n` test windows of its context length).

    The data is loaded again the way the study loaded it (the stored config). When it cannot be
    (a user file that has moved), inputs of the right shape stand in: standard-normal features (the
    inputs the model sees are standardised, so that is the scale) or random token ids.
    """
    from .config import parse_config
    from .data.load import load_data_for
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
        elif hasattr(data, "x_test"):
            x = data.x_test
        else:  # streamed: the first n test items, standardised as in training
            x = next(data.batches("test", n).epoch())[0]
        x = x[:n]
        # Token ids must stay integers (an embedding looks them up); features are float32.
        return x if not x.is_floating_point() else x.float()
    except (NasforgeError, KeyError, OSError):
        if space_config.get("vocab_size") and space_config.get("max_length"):
            # Ids 0 and 1 are padding and unknown; the rest stand for words or characters.
            return torch.randint(2, int(space_config["vocab_size"]), (n, int(space_config["max_length"])),
                                 generator=torch.Generator().manual_seed(0))
        input_shape = space_config.get("input_shape") or summary.get("input_shape")
        if not input_shape:
            raise ExportError(f"{run_dir}: cannot load the study's data nor find its input shape for an example batch") from None
        return torch.randn((n, *input_shape), generator=torch.Generator().manual_seed(0))


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
    # The batch dimension stays dynamic; given by position, since forward's argument may have any name.
    # The exporter logs a line for every torchvision op it cannot register; not our concern here.
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), str(path), input_names=["input"], output_names=["logits"],
                              dynamic_shapes=({0: batch},), dynamo=True, external_data=False, verbose=False)
    except Exception as exc:  # the exporter raises many types; the user needs the reason, not the class
        raise ExportError(f"ONNX export failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from exc
    finally:
        quiet.setLevel(level)


def export_front(run_dir: str | Path, out: str | Path, format: str = "pytorch",  # noqa: A002
                 objectives: Sequence[str] | None = None, space: Any = None) -> tuple[list[Path], list[str]]:
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
            written.append(export_trial(run_dir, Path(out) / f"trial_{trial.id:05d}", trial.id, format=format, space=space))
        except StoreError as exc:
            skipped.append(f"trial {trial.id}: {exc}")
    if not written:
        raise StoreError(f"{run_dir}: none of the {len(front)} front models could be exported: " + "; ".join(skipped))
    return written, skipped


