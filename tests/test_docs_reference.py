"""The docs' reference pages are generated from the code (docs/hooks/generate.py): every flag of the
parser and every field of the config must appear, and a page asking for an unknown block fails."""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
from pathlib import Path

import pytest

from nasforge.cli import build_parser
from nasforge.config import SearchConfig

ROOT = Path(__file__).resolve().parents[1]


def _generate():
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "hooks" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fields(model: type, prefix: str = "") -> list[str]:
    """Dotted paths of every leaf field of a pydantic model, variants of unions included."""
    from pydantic import BaseModel

    out = []
    for name, field in model.model_fields.items():
        args = getattr(field.annotation, "__args__", ()) or ()
        models = [a for a in (field.annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)]
        for arg in args:  # Annotated[Union[...], ...]
            models += [a for a in getattr(arg, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)]
        if models:
            for sub in models:
                out += _fields(sub, f"{prefix}{name}.")
        else:
            out.append(prefix + name)
    return out


def test_every_subcommand_and_option_is_in_the_cli_reference() -> None:
    page = _generate().cli_markdown()
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subs.choices.items():
        assert f"## nasforge {name}" in page
        section = page.split(f"## nasforge {name}")[1].split("\n## ")[0]
        for action in sub._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}`" in section, f"{name} {option}"


def test_every_config_field_is_in_the_config_reference_with_its_flag() -> None:
    generate = _generate()
    page = generate.config_markdown()
    sections = {chunk.split(" {")[0].strip(): chunk for chunk in ("\n" + page).split("\n## ")}
    for path in _fields(SearchConfig):
        *parents, leaf = path.split(".")
        owner = [s for title, s in sections.items() if title.split(" (")[0] == (".".join(parents) or "Top level")]
        assert owner and any(f"| `{leaf}` |" in s for s in owner), path
    # The flag column is read off the parser: every flag that names a config path shows up beside it.
    for path, (flag, _) in generate.flag_of_path().items():
        assert f"`{flag}`" in page, (path, flag)


def test_genome_examples_read_back_in_their_spaces() -> None:
    import numpy as np

    from nasforge.space import CellSpace

    page = _generate().genomes_markdown()
    cell = page.split("### `cell`")[1].split("```json\n")[1].split("\n```")[0]
    assert CellSpace((1, 8, 8), 10).from_json(json.loads(cell)) == CellSpace((1, 8, 8), 10).sample(np.random.default_rng(0))


def test_notebook_page_holds_every_code_cell_and_unknown_blocks_fail() -> None:
    generate = _generate()
    notebook = json.loads((ROOT / "examples" / "quickstart.ipynb").read_text())
    page = generate.expand("# t\n\n<!-- nasforge:notebook -->\n")
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert "".join(cell["source"]).strip() in page
    assert "\n# nasforge quickstart" not in page  # the notebook's title sits under the page's own
    with pytest.raises(KeyError, match="nasforge:nope|'nope'"):
        generate.expand("<!-- nasforge:nope -->")


def test_the_nb201_table_is_the_json_the_benchmark_wrote(tmp_path) -> None:
    from nasforge.cli import main

    table = Path(__import__("os").environ.get("NASFORGE_DATA", ROOT.parent / "shared/data")) / "nb201/nb201.csv"
    if not table.exists():
        pytest.skip(f"the NB201 table is not at {table}")
    results = _generate()._results()
    with pytest.raises(FileNotFoundError, match="nb201_bench.py"):
        results.nb201_markdown(tmp_path)
    columns = {"cifar10": ("c10_valid_12ep", "c10_test_200ep_mean"), "cifar100": ("c100_valid_12ep", "c100_test_200ep_mean")}
    for name, (signal, report) in columns.items():
        assert main(["bench", "--table", str(table), "--signal", signal, "--report", report, "--runs", "3", "--queries", "20",
                     "--strategies", "random,predictor", "--json", str(tmp_path / f"nb201_{name}.json")]) == 0
    page = results.nb201_markdown(tmp_path)
    rows = {line.split(" | ")[0].strip("| "): line for line in page.splitlines() if line.startswith("| ")}
    assert set(rows) == {"strategy", "---", "random", "predictor"}
    for name in columns:
        written = json.loads((tmp_path / f"nb201_{name}.json").read_text())
        for strategy, figures in written["strategies"].items():
            assert f"{figures['mean']:.2f} ± {figures['std']:.2f}" in rows[strategy]
        assert written["machine"]["date"] in page and f"{written['settings']['ceiling']:.2f}" in page
    assert "93.70 ± 0.36 / 71.04 ± 1.07" in rows["random"]  # the published figures beside ours
    assert "3 runs from seed 0, 20 queries" in page


def test_the_cheaper_evaluation_table_is_the_summary_the_script_computed(tmp_path) -> None:
    spec = importlib.util.spec_from_file_location("cheaper", ROOT / "benchmarks" / "performance" / "cheaper_evaluation.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    args = argparse.Namespace(seeds=[0, 1], settings=["plain", "all"], trials=24, epochs=5, jobs=2, target=None)
    rows = [{"setting": s, "seed": seed, "test": test, "best_val": val, "cpu": cpu, "events": [(cpu / 2, val - 0.01), (cpu, val)],
             "screened": 10 if s == "all" else None, "screen_cpu": 0.05 if s == "all" else None, "mparams": 0.02,
             "proxy_pairs": []}
            for s, seed, test, val, cpu in [("plain", 0, 0.90, 0.91, 100.0), ("plain", 1, 0.94, 0.95, 120.0),
                                            ("all", 0, 0.97, 0.96, 50.0), ("all", 1, 0.99, 0.98, 60.0)]]
    summary = script.summarize(rows, args)
    assert summary["target"] == pytest.approx(0.93)  # the median of plain's best validation accuracies
    (tmp_path / "cheaper_evaluation.json").write_text(json.dumps({"command": vars(args), "machine": {"date": "2026-12-03 22:00 UTC",
                                                                  "cores": 2}, "summary": summary, "rows": rows}))
    page = _generate()._results().cheaper_evaluation_markdown(tmp_path)
    plain = next(line for line in page.splitlines() if line.startswith("| plain"))
    both = next(line for line in page.splitlines() if line.startswith("| all three"))
    assert "0.920 ± 0.028" in plain and "110 (1.00×)" in plain and "(1/2 runs)" in plain
    assert "0.980 ± 0.014" in both and "55 (0.50×)" in both and "(2/2 runs)" in both
    assert "--seeds 0 1 --settings plain all" in page and "2026-12-03 22:00 UTC, 2 cores" in page
    assert "20 candidates in 2 searches, 5.0 ms" in page


def test_every_marker_on_every_page_is_expanded() -> None:
    generate = _generate()
    for page in sorted((ROOT / "docs").rglob("*.md")):
        text = page.read_text()
        if "<!-- nasforge:" not in text:
            continue
        expanded = generate.expand(text, str(page))
        assert not re.search(r"^<!-- nasforge:.* -->$", expanded, re.MULTILINE), f"{page}: a marker left as it was"
    nb201 = generate.expand((ROOT / "docs" / "benchmarks" / "nb201.md").read_text())
    assert "| predictor |" in nb201


def test_the_readme_nb201_table_is_the_kept_json() -> None:
    names = {"Optuna TPE": "tpe", "Optuna random": "optuna-random", "**predictor** (random start 40)": "predictor"}
    results = {n: json.loads((ROOT / "benchmarks" / "results" / f"nb201_{n}.json").read_text())["strategies"]
               for n in ("cifar10", "cifar100")}
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Search quality on NAS-Bench-201"):]
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == len(results["cifar10"])
    for cells in rows:
        name = names.get(cells[0].strip("| "), cells[0].strip("| "))
        for column, dataset in ((1, "cifar10"), (2, "cifar100")):
            figures = results[dataset][name]
            assert cells[column].strip("*") == f"{figures['mean']:.2f} ± {figures['std']:.2f}", (name, dataset)
        costs = cells[4].strip("|* ").split(" / ")
        assert costs == [f"{results[d][name]['cpu_us_per_query']:,.0f}" for d in ("cifar10", "cifar100")], name
