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
