"""Reading an export folder back: `load` rebuilds the trained network from genome.json and
weights.pt, `check_export` compares the TorchScript / ONNX files beside them with it.

The folder's format (the file names, `DamagedExport`) lives here; export.py writes such folders.
Loading never unpickles arbitrary objects: weights are read with `weights_only=True`, the genome is
JSON, and the network is rebuilt from the genome by its search space, first on PyTorch's `meta`
device (no memory) to check the weight file's tensors against it, so a damaged or crafted export is
named as such instead of allocating whatever its genome.json asks for.
"""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from .data.datasets import make_views
from .ensemble import combine
from .errors import NasforgeError
from .space.resolve import space_from_record

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


class DamagedExport(ExportError):
    """An export folder whose genome.json or weights.pt cannot be read, or do not match each other."""


def build_exported(meta: dict[str, Any], given: Any = None) -> nn.Module:
    """The untrained network of an export's metadata: one genome, or an Ensemble of its members'."""
    record = {"name": meta["space"], "config": meta["space_config"], "class": meta.get("space_class")}
    space = space_from_record(record, given)
    genomes = [m["genome"] for m in meta.get("members") or [meta]]
    task = (meta.get("dataset") or {}).get("task", "classification")
    return combine([space.build(space.from_json(g)) for g in genomes], make_views(meta.get("views")), task)


def check_export(folder: str | Path, batch: torch.Tensor, space: Any = None) -> dict[str, float]:
    """Max abs difference between the exported PyTorch model and each other form in `folder`
    (TorchScript via torch.jit.load, ONNX via onnxruntime) on `batch`."""
    folder = Path(folder)
    reference = load(folder, space=space)
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


def load(path: str | Path, space: Any = None) -> nn.Module:
    """A trained model from an export folder (or its genome.json), in eval mode. The network is rebuilt
    by its search space; for your own space, nasforge imports its model function (or class) by the
    module:qualname it recorded, or uses `space` (the function itself) where that module cannot be
    imported here. The folder's model.torchscript.pt / model.onnx load without nasforge at all.

    A folder whose files cannot be read or do not match raises DamagedExport naming the file; the
    network is first built on the meta device and checked against the weight file, so nothing is
    allocated for sizes the weight file does not hold."""
    path = Path(path)
    folder = path.parent if path.is_file() else path
    meta_path = folder / GENOME_FILE
    if not meta_path.exists():
        raise NasforgeError(f"{folder} is not a nasforge export (no {GENOME_FILE})")
    damaged = f"{folder} is a damaged export:"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DamagedExport(f"{damaged} {GENOME_FILE} cannot be read ({exc}; truncated?); export the model again") from None
    missing = [k for k in ("space", "space_config", "genome") if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise DamagedExport(f"{damaged} {GENOME_FILE} lacks {', '.join(missing)}; export the model again")
    weights_path = folder / WEIGHTS_FILE
    if not weights_path.exists():
        raise DamagedExport(f"{damaged} it has no {WEIGHTS_FILE}; export the model again")
    try:
        state = _read_weights(weights_path)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for a broken file
        raise DamagedExport(f"{damaged} {WEIGHTS_FILE} cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}; "
                            "truncated?); export the model again") from None
    try:
        with torch.device("meta"):  # shapes only: no memory, whatever sizes the genome states
            skeleton = build_exported(meta, space)
    except (NasforgeError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise DamagedExport(f"{damaged} {GENOME_FILE} does not describe a network of the {meta.get('space')!r} space ({exc})") from None
    except Exception:  # a user's model function that cannot run on the meta device: built for real below
        skeleton = None
    if skeleton is not None:
        # Lazy modules (a user's own model function) have no shapes yet: the weight file gives them theirs.
        expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items() if not is_lazy(v)}
        found = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor) and k in expected}
        unknown = set(state) - set(skeleton.state_dict())
        if expected != found or unknown:
            raise DamagedExport(f"{damaged} {WEIGHTS_FILE} does not match {GENOME_FILE}: "
                                f"{_first_difference(expected, {k: tuple(v.shape) for k, v in state.items()})}")
    model = build_exported(meta, space)  # now the real tensors, of the sizes the weight file holds
    model.load_state_dict(state)
    return model.eval()


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        # mmap: tensor data stays in the file until copied into the model (never a second copy in memory).
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
        state = torch.load(path, map_location="cpu", weights_only=True)  # a legacy (non-zip) file
    if not isinstance(state, dict):
        raise pickle.UnpicklingError(f"expected a state dict, found a {type(state).__name__}")
    return state


def _first_difference(expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]]) -> str:
    for name, shape in expected.items():
        if name not in found:
            return f"the network's tensor {name} {list(shape)} is not in the file"
        if found[name] != shape:
            return f"{name} has shape {list(found[name])} in the file, the network needs {list(shape)}"
    extra = sorted(set(found) - set(expected))
    return f"the file holds tensors the network does not have ({', '.join(extra[:3])})"
