"""The end of `nasforge search`: the best architecture, its test score, where the run is, and the
next commands to try, each of which must work on the run as printed."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from nasforge.cli import main


def _tiny_search(tmp_path: Path, capsys, *extra: str) -> tuple[Path, str]:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({"space": {"channels": [8], "kernels": [3], "min_blocks": 1, "max_blocks": 1,
                                                "dense_units": [16]}}))
    out = tmp_path / "run dir"  # a space in the path: the printed commands must quote it
    code = main(["search", str(config), "--dataset", "digits", "--strategy", "random", "--trials", "2", "--epochs", "1",
                 "--batch-size", "64", "--seed", "0", "--progress", "false", "--out", str(out), *extra])
    assert code == 0
    return out, capsys.readouterr().out


def test_search_ends_with_the_best_model_its_test_score_the_run_and_next_commands(tmp_path, capsys) -> None:
    out, printed = _tiny_search(tmp_path, capsys)
    lines = printed.splitlines()
    assert lines[0].startswith("stopped: trials; 2 trials (2 complete)")
    best = next(line for line in lines if line.startswith("best architecture (trial "))
    assert "conv3x8" in best
    test_line = next(line for line in lines if line.strip().startswith("test accuracy "))
    accuracy = float(test_line.split()[2].rstrip(","))
    assert 0.0 <= accuracy <= 1.0
    assert f"run: {shlex.quote(str(out))}" in printed
    commands = [line.split("  #")[0].strip() for line in lines[lines.index("next:") + 1:]]
    assert [c.split()[:2] for c in commands] == [["nasforge", "show"], ["nasforge", "report"], ["nasforge", "export"],
                                                 ["python", "-c"]]
    # The printed commands are the real ones: run them as a newcomer would paste them.
    for command in commands[:3]:
        argv = shlex.split(command)
        if argv[1] == "report":  # the report is tested elsewhere; here only that the command parses
            continue
        assert main(argv[1:]) == 0, command
    capsys.readouterr()
    exec(shlex.split(commands[3])[2], {})  # the `python -c` code, in this process (torch is already loaded)
    assert "Linear(" in capsys.readouterr().out  # the printed torch module ends in its classifier


def test_a_pareto_search_points_to_its_front(tmp_path, capsys) -> None:
    _, printed = _tiny_search(tmp_path, capsys, "--strategy", "nsga2", "--objectives", "accuracy,params", "--population", "2")
    assert "show" in printed and "--front" in printed.split("next:")[1].splitlines()[1]
