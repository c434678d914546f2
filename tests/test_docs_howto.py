"""The how-to "Add your own strategy through the registries" works as written: its strategy module
and config are taken from the page itself and run through the CLI, by import path, and resumed."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from nasforge.cli import main

PAGE = Path(__file__).resolve().parents[1] / "docs" / "how-to" / "registries.md"


def _block(title: str) -> str:
    match = re.search(rf'```\w+ title="{re.escape(title)}"\n(.*?)\n```', PAGE.read_text(), re.S)
    assert match, f"{PAGE} has no code block titled {title}"
    return match.group(1) + "\n"


@pytest.mark.slow
def test_the_pages_strategy_runs_from_the_cli_by_import_path_and_resumes(tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "greedy_strategy.py").write_text(_block("greedy_strategy.py"))
    (tmp_path / "greedy.yaml").write_text(_block("greedy.yaml") + "space: {channels: [8, 16], max_blocks: 2, dense_units: [16]}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "runs" / "greedy"
    args = ["search", str(tmp_path / "greedy.yaml"), "--dataset", "digits", "--epochs", "1", "--batch-size", "64",
            "--progress", "false", "--out", str(out)]
    assert main([*args, "--trials", "3"]) == 0
    assert main(["search", "--resume", "--out", str(out), "--trials", "4", "--progress", "false"]) == 0
    assert "best architecture" in capsys.readouterr().out
    with sqlite3.connect(out / "study.sqlite") as db:
        rows = db.execute("SELECT id, parents, operator, status FROM trials ORDER BY id").fetchall()
    assert [r[0] for r in rows] == list(range(1, 5)) and {r[3] for r in rows} == {"complete"}
    assert rows[0][2] == "random" and any(r[1] != "[]" for r in rows)  # it sampled, then mutated its best


def test_the_pages_strategy_registers_by_name_with_its_options_as_keywords(tmp_path, monkeypatch) -> None:
    import nasforge
    from nasforge.registry import STRATEGIES

    (tmp_path / "greedy_strategy.py").write_text(_block("greedy_strategy.py"))
    monkeypatch.syspath_prepend(str(tmp_path))
    from greedy_strategy import Greedy

    nasforge.register_strategy("greedy", Greedy)
    try:
        study = nasforge.search(dataset="digits", strategy="greedy", patience=1, trials=2, epochs=1, channels="8",
                                max_blocks=2, dense_units="16", progress=False, out=str(tmp_path / "py"))
        assert isinstance(study.strategy, Greedy) and study.strategy.patience == 1
    finally:
        STRATEGIES.unregister("greedy")


@pytest.mark.slow
def test_the_pages_toy_space_and_strategy_run_from_the_cli_by_import_path_and_by_entry_point(tmp_path) -> None:
    import os
    import subprocess
    import sys

    (tmp_path / "greedy_strategy.py").write_text(_block("greedy_strategy.py"))
    (tmp_path / "toy_space.py").write_text(_block("toy_space.py"))
    info = tmp_path / "toyplugins-0.1.dist-info"  # what installing a package with the page's entry points leaves
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toyplugins\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[nasforge.spaces]\ntiny-mlp = toy_space:tiny_mlp\n\n"
                                            "[nasforge.strategies]\ngreedy = greedy_strategy:Greedy\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path]), "OMP_NUM_THREADS": "1"}
    common = ["--dataset", "digits", "--trials", "3", "--epochs", "1", "--progress", "false"]
    for name, args in (("paths", ["--space", "toy_space:tiny_mlp", "--strategy", "greedy_strategy:Greedy"]),
                       ("names", ["--space", "tiny-mlp", "--strategy", "greedy", "--patience", "2"])):
        out = tmp_path / "runs" / name
        done = subprocess.run([sys.executable, "-m", "nasforge.cli", "search", *args, *common, "--out", str(out)],
                              capture_output=True, text=True, env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "best architecture" in done.stdout
        with sqlite3.connect(out / "study.sqlite") as db:
            genomes = [g for (g,) in db.execute("SELECT genome FROM trials ORDER BY id")]
        assert len(genomes) == 3 and all('"width"' in g for g in genomes)  # the toy space's decisions
