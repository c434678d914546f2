"""Searching the user's own model family end to end: every strategy, the evaluation features, worker
processes, resume after a kill, and everything a run gives back (show, report, export, load) in a
fresh process. The families are in model_families.py; broken definitions in test_function_space.py."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import model_families as fam
import nasforge
from nasforge.errors import ConfigError
from nasforge.registry import SPACES, STRATEGIES

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(TESTS)]), "OMP_NUM_THREADS": "1"}
QUICK = {"dataset": "digits", "epochs": 1, "progress": False}

# Options that let each strategy reach its learning part within a few trials.
STRATEGY_OPTIONS = {"evolution": {"population": 2, "sample_size": 1}, "genetic": {"population": 2},
                    "nsga2": {"population": 2, "objectives": "accuracy,params"}}
STRATEGY_CONFIG = {"predictor": {"init": 2}, "local": {"init": 2, "neighbours": 3}}


def _strategies() -> list[tuple[str, dict]]:
    names = [(n, {}) for n in STRATEGIES.names() if n != "reinforce"]
    return names + [("reinforce", {"controller": "independent"}), ("reinforce", {"controller": "lstm"})]


@pytest.mark.parametrize(("strategy", "extra"), _strategies(), ids=lambda v: v if isinstance(v, str) else "-".join(v.values()))
def test_every_registered_strategy_searches_a_define_by_run_space(strategy: str, extra: dict, tmp_path: Path) -> None:
    config = {"strategy": {"name": strategy, **extra, **STRATEGY_CONFIG.get(strategy, {})}}
    study = nasforge.search(config, space=fam.tiny_resnet, trials=4, seed=1, out=str(tmp_path / "run"),
                            **STRATEGY_OPTIONS.get(strategy, {}), **QUICK)
    trials = study.trials
    assert len(trials) == 4 and all(t.status == "complete" for t in trials), [(t.status, t.error) for t in trials]
    assert len({json.dumps(t.genome, sort_keys=True) for t in trials}) == 4
    assert any(t.genome["depth"] < 3 for t in trials)  # conditional decisions came and went
    assert study.final is not None and isinstance(study.best_model(), torch.nn.Module)


def test_inheritance_halving_early_stopping_and_constraints_work_on_a_model_function(tmp_path: Path) -> None:
    study = nasforge.search(space=fam.tiny_resnet, strategy="evolution", population=3, sample_size=2, trials=7, seed=0,
                            inherit=True, fidelity="halving", min_epochs=1, eta=2, rungs=2, early_stop="median",
                            constraint=["params<=1500", "flops<=60000"], out=str(tmp_path / "run"), **QUICK)
    complete = [t for t in study.trials if t.status == "complete"]
    assert complete and all(t.metrics["params"] <= 1500 and t.metrics["flops"] <= 60000 for t in complete)
    assert all({"params", "flops", "latency_ms", "size_bytes"} <= set(t.metrics) for t in complete)  # measured before training
    assert any(t.metrics.get("inherited_tensors", 0) > 0 for t in complete)  # by parameter name and shape
    assert any(t.metrics.get("fidelity") == 2 for t in complete)  # promoted to the second rung
    folds = nasforge.search(space=fam.mlp, strategy="random", trials=2, cv_folds=3, seed=0, out=str(tmp_path / "cv"), **QUICK)
    assert all(len(t.metrics["cv_accuracy"]) == 3 for t in folds.trials)


def test_a_function_raising_for_some_values_fails_those_trials_with_its_message(tmp_path: Path) -> None:
    study = nasforge.search({"initial_genomes": [{"width": 16}]}, space=fam.raises_when_wide, strategy="random", trials=3, seed=3,
                            out=str(tmp_path / "run"), **QUICK)
    first = study.trials[0]
    assert first.status == "failed" and "raised ValueError: width 16 is not supported by this family yet" in first.error
    assert [t.status for t in study.trials[1:]] == ["complete", "complete"]  # the search went on


def test_a_closure_with_the_pool_is_refused_before_the_run_exists(tmp_path: Path) -> None:
    def make(c: nasforge.Choices) -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, c.choice("units", [10, 20])), torch.nn.Linear(20, 10))

    with pytest.raises(ConfigError, match=r"executor: the model function make .* cannot be sent to worker processes: it is "
                                          r"defined inside another function"):
        nasforge.search(space=make, executor="pool", workers=2, trials=2, out=str(tmp_path / "run"), **QUICK)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_pool_workers_rebuild_the_function_by_its_module_and_name(tmp_path: Path) -> None:
    study = nasforge.search(space=fam.mlp, strategy="random", executor="pool", workers=2, trials=3, seed=0,
                            out=str(tmp_path / "run"), **QUICK)
    assert [t.status for t in study.trials] == ["complete"] * 3, [t.error for t in study.trials]


def _trials(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT id, genome, operator, status, reward FROM trials ORDER BY id").fetchall()


def test_kill_and_resume_of_a_user_space_run_records_what_an_uninterrupted_run_does(tmp_path: Path) -> None:
    args = ["--space", "model_families:tiny_resnet", "--dataset", "digits", "--strategy", "reinforce", "--trials", "6",
            "--epochs", "2", "--seed", "4", "--progress", "false"]
    cli = [sys.executable, "-m", "nasforge.cli", "search"]
    run, db = tmp_path / "killed", tmp_path / "killed" / "study.sqlite"
    proc = subprocess.Popen(cli + args + ["--out", str(run)], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
        try:
            rows = _trials(db) if db.exists() else []
        except sqlite3.OperationalError:
            continue
        if sum(r[3] == "complete" for r in rows) >= 3 and rows[-1][3] == "running":
            os.kill(proc.pid, signal.SIGKILL)  # mid-trial
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the search finished before it could be killed"
    done = [r for r in _trials(db) if r[3] != "running"]
    resumed = subprocess.run(cli + ["--resume", "--out", str(run), "--progress", "false"], env=ENV, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    after = _trials(db)
    assert after[: len(done)] == done and len(after) == 6
    clean = subprocess.run(cli + args + ["--out", str(tmp_path / "clean")], env=ENV, capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr
    reference = _trials(tmp_path / "clean" / "study.sqlite")
    assert [r[:4] for r in after] == [r[:4] for r in reference]  # the same genomes, operators, statuses
    assert [r[4] for r in after] == pytest.approx([r[4] for r in reference])


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("own") / "run"
    nasforge.search(space=fam.tiny_resnet, strategy="evolution", population=2, sample_size=1, trials=3, seed=2, out=str(out), **QUICK)
    return out


def test_export_then_load_in_a_fresh_process_gives_identical_outputs(finished: Path, tmp_path: Path) -> None:
    folder = nasforge.export_trial(finished, tmp_path / "ts", format="torchscript")
    x = torch.load(finished / "example.pt", weights_only=True)["x"]
    with torch.no_grad():
        expected = nasforge.load(folder)(x)
    torch.save(x, tmp_path / "x.pt")
    script = textwrap.dedent(f"""
        import torch, nasforge
        x = torch.load({str(tmp_path / 'x.pt')!r}, weights_only=True)
        with torch.no_grad():
            torch.save(nasforge.load({str(folder)!r})(x), {str(tmp_path / 'y.pt')!r})
    """)
    done = subprocess.run([sys.executable, "-c", script], env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert torch.equal(torch.load(tmp_path / "y.pt", weights_only=True), expected)
    # The TorchScript file needs neither nasforge nor the model function.
    plain = subprocess.run([sys.executable, "-c", "import sys, torch; m = torch.jit.load(sys.argv[1]); "
                            "x = torch.load(sys.argv[2], weights_only=True); torch.save(m(x), sys.argv[3])",
                            str(folder / "model.torchscript.pt"), str(tmp_path / "x.pt"), str(tmp_path / "z.pt")],
                           env={**os.environ, "PYTHONPATH": ""}, capture_output=True, text=True)
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert torch.equal(torch.load(tmp_path / "z.pt", weights_only=True), expected)


def test_a_run_without_an_example_input_exports_from_its_reloaded_data(finished: Path, tmp_path: Path) -> None:
    import shutil

    old = tmp_path / "old"
    shutil.copytree(finished, old)
    (old / "example.pt").unlink()  # as runs made before example.pt existed
    folder = nasforge.export_trial(old, tmp_path / "ts", format="torchscript")
    scripted = torch.jit.load(str(folder / "model.torchscript.pt"))
    x = torch.load(finished / "example.pt", weights_only=True)["x"]  # traced on the test split it reloaded
    with torch.no_grad():
        assert torch.equal(scripted(x), nasforge.load(folder)(x))


@pytest.mark.slow
def test_show_report_and_onnx_export_work_in_new_processes(finished: Path, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    cli = [sys.executable, "-m", "nasforge.cli"]
    for command in (["show", str(finished)], ["report", str(finished), "--out", str(tmp_path / "report")],
                    ["export", str(finished), "--format", "onnx", "--out", str(tmp_path / "onnx")]):
        done = subprocess.run(cli + command, env=ENV, capture_output=True, text=True)
        assert done.returncode == 0, (command, done.stderr[-2000:])
    assert "onnx vs PyTorch on 16 example inputs" in done.stdout
    x = torch.load(finished / "example.pt", weights_only=True)["x"]
    with torch.no_grad():
        expected = nasforge.load(tmp_path / "onnx")(x)
    session = ort.InferenceSession(str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
    assert float((got - expected).abs().max()) < 1e-4


def test_a_function_that_cannot_be_imported_says_how_to_pass_it(finished: Path, tmp_path: Path) -> None:
    folder = nasforge.export_trial(finished, tmp_path / "model")
    done = subprocess.run([sys.executable, "-c", f"import nasforge; nasforge.load({str(folder)!r})"],
                          env={**ENV, "PYTHONPATH": str(REPO / "src")}, capture_output=True, text=True)
    assert done.returncode == 1
    assert "cannot import the run's model function model_families:tiny_resnet" in done.stderr
    assert "nasforge.load(EXPORT, space=make_model)" in done.stderr
    with torch.no_grad():  # given the function, it loads
        x = torch.randn(3, 1, 8, 8)
        assert torch.equal(nasforge.load(folder, space=fam.tiny_resnet)(x), nasforge.load(folder)(x))


def test_yaml_names_a_model_function_and_the_config_checks_space_names(tmp_path: Path) -> None:
    config = tmp_path / "search.yaml"
    config.write_text(f"space: {{function: 'model_families:mlp'}}\ndataset: digits\nstrategy: random\nout: {tmp_path / 'run'}\n"
                      "budget: {trials: 2}\ntraining: {epochs: 1}\nprogress: false\n")
    done = subprocess.run([sys.executable, "-m", "nasforge.cli", "search", str(config)], env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "units0=" in done.stdout
    with pytest.raises(ConfigError, match=r"space.name: .*unknown search space 'resnett'; known: cell, function, layers"):
        nasforge.parse_config({"space": {"name": "resnett"}})
    with pytest.raises(ConfigError, match="space.max_blocks: configures the built-in spaces"):
        nasforge.search(space=fam.mlp, max_blocks=3, trials=1, out=str(tmp_path / "x"), **QUICK)


def test_registered_spaces_and_space_classes_are_usable_by_name_and_as_objects(tmp_path: Path) -> None:
    nasforge.register_space("tiny-resnet", fam.tiny_resnet)
    nasforge.register_space("small-mlp", fam.MLPSpace)
    try:
        by_name = nasforge.search(space="tiny-resnet", strategy="random", trials=2, out=str(tmp_path / "a"), **QUICK)
        assert by_name.space.name == "function" and set(by_name.trials[0].genome) >= {"width", "depth"}
        cls = nasforge.search(space="small-mlp", strategy="reinforce", trials=2, out=str(tmp_path / "b"), **QUICK)
        assert cls.space.input_shape == (1, 8, 8)  # made with the task's keywords it takes
    finally:
        SPACES.unregister("tiny-resnet")
        SPACES.unregister("small-mlp")
    as_class = nasforge.search(space=fam.MLPSpace, strategy="random", trials=1, out=str(tmp_path / "d"), **QUICK)
    assert as_class.space.input_shape == (1, 8, 8)
    factory = nasforge.search(space=lambda input_shape: fam.MLPSpace(input_shape, units=(12,)), strategy="random", trials=1,
                              out=str(tmp_path / "f"), **QUICK)
    assert factory.trials[0].genome == [12]
    instance = nasforge.search(space=fam.MLPSpace((1, 8, 8), units=(8,)), strategy="random", trials=2, out=str(tmp_path / "c"),
                               **QUICK)
    assert [t.genome for t in instance.trials] == [[8], [8]] or instance.trials[0].genome == [8]
    # Not registered in a fresh process: rebuilt from the class's import path, which the run recorded.
    done = subprocess.run([sys.executable, "-m", "nasforge.cli", "export", str(tmp_path / "c"), "--out", str(tmp_path / "e")],
                          env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_plugin_registers_a_space_through_an_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / "plugin_pkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plugin-pkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[nasforge.spaces]\nplugged-mlp = model_families:mlp\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    SPACES.reload_plugins()
    try:
        assert "plugged-mlp" in SPACES.names()
        study = nasforge.search(space="plugged-mlp", strategy="random", trials=2, out=str(tmp_path / "run"), **QUICK)
        assert all(t.status == "complete" for t in study.trials)
    finally:
        SPACES.unregister("plugged-mlp")


@pytest.mark.slow
def test_the_example_searches_exports_to_onnx_and_loads_back(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    done = subprocess.run([sys.executable, str(REPO / "examples" / "own_model.py"), "--trials", "2", "--epochs", "1",
                           "--out", str(tmp_path)], env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout
    assert "evolution: 2 trials" in lines and "reinforce: 2 trials" in lines
    assert "model.onnx" in lines and "same predictions: True" in lines
    # Its function lives in a script: another process is told how to pass it, and then exports.
    cli = [sys.executable, "-m", "nasforge.cli", "export", str(tmp_path / "evolution"), "--out", str(tmp_path / "again")]
    refused = subprocess.run(cli, env=ENV, capture_output=True, text=True)
    assert refused.returncode == 2 and "--space path/to/script.py:make_model" in refused.stderr
    done = subprocess.run(cli + ["--space", f"{REPO / 'examples' / 'own_model.py'}:make_model"], env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_run_of_a_scripts_function_resumes_from_the_command_line_with_space(tmp_path: Path) -> None:
    script = tmp_path / "my_search.py"
    script.write_text(textwrap.dedent("""
        import sys
        from torch import nn
        import nasforge

        def make_model(c):
            width = c.choice("width", [4, 8])
            return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))

        if __name__ == "__main__":
            nasforge.search(space=make_model, dataset="digits", strategy="random", trials=1, epochs=1, progress=False,
                            out=sys.argv[1])
    """))
    run = tmp_path / "run"
    assert subprocess.run([sys.executable, str(script), str(run)], env=ENV, capture_output=True, text=True).returncode == 0
    cli = [sys.executable, "-m", "nasforge.cli", "search", "--resume", "--out", str(run), "--trials", "2", "--progress", "false"]
    refused = subprocess.run(cli, env=ENV, capture_output=True, text=True)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "nasforge search --resume --out RUN --space path/to/script.py:make_model" in refused.stderr
    resumed = subprocess.run(cli + ["--space", f"{script}:make_model"], env=ENV, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    with sqlite3.connect(run / "study.sqlite") as db:
        assert [s for (s,) in db.execute("SELECT status FROM trials ORDER BY id")] == ["complete", "complete"]
