"""The docs' reference pages are generated from the code (docs/hooks/generate.py): every flag of the
parser and every field of the config must appear, and a page asking for an unknown block fails."""

from __future__ import annotations

import argparse
import importlib.util
import json
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
