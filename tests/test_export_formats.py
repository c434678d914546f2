"""Exports of the best model of a real (small) search, in every format, loaded back and compared.

PyTorch and TorchScript must reproduce the study's own model bit for bit; ONNX is compared in
onnxruntime on the study's test samples; the generated model.py must run with torch alone.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import nasforge
from nasforge.cli import main
from nasforge.errors import NasforgeError, StoreError
from nasforge.export import (
    ONNX_FILE,
    SOURCE_FILE,
    TORCHSCRIPT_FILE,
    WEIGHTS_FILE,
    DamagedExport,
    check_export,
    export_front,
    export_trial,
    load,
    real_batch,
)
from nasforge.objectives import pareto_front


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> nasforge.Study:
    out = tmp_path_factory.mktemp("export") / "run"
    return nasforge.search({"space": {"channels": [8, 16], "max_blocks": 3}}, dataset="digits", strategy="evolution", population=3,
                           trials=6, epochs=2, seed=2, keep_top=3, out=str(out), progress=False,
                           inherit=False)  # without inheritance only the top 3 keep weights: one test needs a dropped one


@pytest.fixture(scope="module")
def batch(study: nasforge.Study) -> torch.Tensor:
    x = real_batch(study.run_dir)
    assert torch.equal(x, study.evaluator.data.x_test[:64])  # the study's own test samples, as it normalised them
    return x


@pytest.fixture(scope="module")
def expected(study: nasforge.Study, batch: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return study.best_model()(batch)


def test_pytorch_export_reloads_identically(study: nasforge.Study, batch: torch.Tensor, expected: torch.Tensor, tmp_path: Path) -> None:
    folder = export_trial(study.run_dir, tmp_path / "pt")
    assert {p.name for p in folder.iterdir()} == {"genome.json", WEIGHTS_FILE, SOURCE_FILE}
    meta = json.loads((folder / "genome.json").read_text())
    assert meta["trial"] == study.final["trial"] and meta["test"]["accuracy"] == study.final["test"]["accuracy"]
    with torch.no_grad():
        assert torch.equal(load(folder)(batch), expected)


def test_loading_refuses_arbitrary_pickled_objects(study: nasforge.Study, tmp_path: Path) -> None:
    folder = export_trial(study.run_dir, tmp_path / "pt")
    weights = torch.load(folder / WEIGHTS_FILE, weights_only=True)
    weights["payload"] = _Payload()  # what a tampered file would carry
    torch.save(weights, folder / WEIGHTS_FILE)
    with pytest.raises(DamagedExport, match="Weights only load failed"):  # named, never unpickled
        load(folder)


class _Payload:
    """An object a weights_only load must refuse to construct."""


def test_generated_source_runs_with_torch_alone(study: nasforge.Study, batch: torch.Tensor, expected: torch.Tensor,
                                                tmp_path: Path) -> None:
    folder = export_trial(study.run_dir, tmp_path / "pt")
    source = (folder / SOURCE_FILE).read_text()
    imported = {a.name.split(".")[0] for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Import) for a in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)}
    assert imported == {"torch"}
    torch.save(batch, tmp_path / "batch.pt")
    # -I: no cwd, no PYTHON* variables, no user site; and nasforge is made unimportable outright, so
    # the editable install in this venv cannot help the generated file.
    script = textwrap.dedent(f"""
        import importlib.util, sys
        sys.modules["nasforge"] = None
        try:
            import nasforge
        except ImportError:
            pass
        else:
            raise SystemExit("nasforge importable")
        import torch
        spec = importlib.util.spec_from_file_location("found_model", {str(folder / SOURCE_FILE)!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        model = module.load({str(folder / WEIGHTS_FILE)!r})
        with torch.no_grad():
            torch.save(model(torch.load({str(tmp_path / 'batch.pt')!r}, weights_only=True)), {str(tmp_path / 'out.pt')!r})
        assert not [m for m, mod in sys.modules.items() if m.startswith("nasforge") and mod is not None]
    """)
    done = subprocess.run([sys.executable, "-I", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert torch.equal(torch.load(tmp_path / "out.pt", weights_only=True), expected)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_export_is_identical(study: nasforge.Study, batch: torch.Tensor, expected: torch.Tensor, tmp_path: Path) -> None:
    folder = export_trial(study.run_dir, tmp_path / "ts", format="torchscript")
    scripted = torch.jit.load(str(folder / TORCHSCRIPT_FILE), map_location="cpu")
    with torch.no_grad():
        assert torch.equal(scripted(batch), expected)
        assert scripted(batch[:1]).shape == (1, expected.shape[1])  # traced on 2 samples, any batch size works
    assert check_export(folder, batch) == {"torchscript": 0.0}


@pytest.mark.slow
def test_onnx_export_matches_in_onnxruntime(study: nasforge.Study, batch: torch.Tensor, expected: torch.Tensor, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    ort = pytest.importorskip("onnxruntime", reason="the 'export' extra is not installed")
    assert main(["export", str(study.run_dir), "--best", "--format", "onnx", "--out", str(tmp_path / "onnx")]) == 0
    printed = capsys.readouterr().out
    match = re.search(r"onnx vs PyTorch on 16 example inputs: max abs diff (\S+)", printed)  # the run's example.pt
    assert match, printed
    print(f"ONNX max abs diff (CLI): {match.group(1)}")
    session = ort.InferenceSession(str(tmp_path / "onnx" / ONNX_FILE), providers=["CPUExecutionProvider"])
    for x, want in ((batch, expected), (batch[:5], expected[:5])):  # dynamic batch dimension
        got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
        assert got.shape == want.shape
        assert float((got - want).abs().max()) < 1e-4
    assert float(match.group(1)) < 1e-4


def test_export_of_a_trial_whose_weights_were_dropped_names_the_problem(study: nasforge.Study, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    kept = {int(p.stem.split("_")[1]) for p in (study.run_dir / "weights").glob("trial_*.pt")}
    dropped = next(t.id for t in study.trials if t.id not in kept and t.status == "complete")
    assert main(["export", str(study.run_dir), "--trial", str(dropped), "--out", str(tmp_path / "x")]) == 2
    assert "were not kept" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # argparse's choices: same exit code as every user error
        main(["export", str(study.run_dir), "--format", "savedmodel", "--out", str(tmp_path / "x")])
    assert exit_.value.code == 2


def test_front_export_needs_several_objectives(study: nasforge.Study, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(study.run_dir), "--front", "--out", str(tmp_path / "front")]) == 2
    err = capsys.readouterr().err
    assert "several objectives" in err and err.count("\n") == 1
    # With objectives (as a multi-objective study declares them) every front model with kept weights is exported.
    folders, skipped = export_front(study.run_dir, tmp_path / "front", objectives=["accuracy", "params"])
    front = {t.id for t in pareto_front(study.trials, ["accuracy", "params"])}
    kept = {int(p.stem.split("_")[1]) for p in (study.run_dir / "weights").glob("trial_*.pt")} | {study.final["trial"]}
    assert {int(f.name.split("_")[1]) for f in folders} == front & kept
    assert {int(re.match(r"trial (\d+)", line).group(1)) for line in skipped} == front - kept
    for folder in folders:
        assert json.loads((folder / "genome.json").read_text())["trial"] == int(folder.name.split("_")[1])
    with pytest.raises(NasforgeError):
        export_front(study.run_dir, tmp_path / "none", objectives=["accuracy"])
    with pytest.raises(StoreError):
        export_front(tmp_path / "no-run", tmp_path / "none", objectives=["accuracy", "params"])
