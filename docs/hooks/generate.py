"""MkDocs hook: the reference pages that restate code are generated from it at build time, never
written twice.

A page asks for a generated block with a marker line `<!-- nasforge:NAME -->`; NAME is one of
GENERATORS below. An unknown name fails the build (the site is built with --strict in CI).

- `cli`: every subcommand and option of `nasforge.cli.build_parser()`.
- `config`: every field of the pydantic models of `nasforge.config`, from their JSON schema, with the
  flag that sets it (read from the parser's help, which names each flag's config path).
- `store-schema`: `nasforge.store.SCHEMA`, the SQLite tables of a run.
- `genomes`: a genome of each built-in search space, sampled and written by the space itself.
- `run-example`, `export-example`: a one-trial search on scikit-learn's digits run in a temporary
  folder while the site builds: its folder listing, stored metadata and trial row, and the files and
  genome.json of its export.
- `notebook`: examples/quickstart.ipynb, its cells as Markdown and code blocks.
- `results-nb201`, `results-cheaper-evaluation`: benchmark tables built from the JSON in
  benchmarks/results/ (results.py beside this file).

The functions are plain (no MkDocs import) so tests can call them.
"""

from __future__ import annotations

import argparse
import functools
import html
import importlib.util
import json
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# Any name on a marker line: an unknown one fails the build rather than staying a silent comment.
MARKER = re.compile(r"^<!-- nasforge:(\S+) -->$", re.MULTILINE)
# The search subcommand's flags end their help with the config path they set: "... [training.epochs]".
CONFIG_PATH = re.compile(r"\s*\[([a-z_][a-z_.]*)\]$")


def _cell(text: Any) -> str:
    """Text safe inside a Markdown table cell (no HTML, no column breaks, no line breaks)."""
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\n", " ")


def _code(text: Any) -> str:
    return "`" + str(text).replace("|", "\\|").replace("`", "'") + "`"


# -- the command line ---------------------------------------------------------------------------
def _subcommands(parser: argparse.ArgumentParser) -> tuple[dict[str, argparse.ArgumentParser], dict[str, str]]:
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help or "" for choice in subs._choices_actions}
    return dict(subs.choices), helps


def _value(action: argparse.Action) -> str:
    if action.nargs == 0:
        return "–"
    if action.choices:
        return " \\| ".join(_code(c) for c in action.choices)
    kind = action.metavar or (action.type.__name__.upper() if isinstance(action.type, type) else "TEXT")
    kind = "BOOL" if getattr(action.type, "__name__", "") == "_bool" else kind
    return _code(kind) + (", repeatable" if isinstance(action, argparse._AppendAction) else "")


def cli_markdown() -> str:
    from nasforge.cli import build_parser

    parser = build_parser()
    commands, helps = _subcommands(parser)
    lines = [f"`{parser.prog}`: {parser.description} Every command prints one line and exits with code 2 on a "
             "user error (a bad flag, config or path), and exits 130 on Ctrl-C.", ""]
    for name, sub in commands.items():
        positionals = [a for a in sub._actions if not a.option_strings]
        usage = " ".join([f"nasforge {name}", *(a.dest.upper() if a.required or a.nargs != "?" else f"[{a.dest.upper()}]"
                                               for a in positionals), "[options]"])
        lines += [f"## nasforge {name}", "", (helps.get(name) or "").capitalize() + ".", "", "```text", usage, "```", "",
                  "| argument | value | default | what it does |", "| --- | --- | --- | --- |"]
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            names = ", ".join(_code(o) for o in action.option_strings) or _code(action.dest.upper())
            if action.required and action.option_strings:
                names += " (required)"
            default = action.default
            shown = "–" if default in (None, False, argparse.SUPPRESS) else _code(default)
            text = action.help or ""
            path = CONFIG_PATH.search(text)
            if path:
                text = text[: path.start()]
            cell = _cell(text) + (f"; config: [{_code(path.group(1))}](config.md#{_section_of(path.group(1))})" if path else "")
            lines.append(f"| {names} | {_value(action)} | {shown} | {cell} |")
        exclusive = [g for g in sub._mutually_exclusive_groups if g._group_actions]
        for group in exclusive:
            lines += ["", "At most one of " + ", ".join(_code(a.option_strings[0]) for a in group._group_actions) + "."]
        lines.append("")
    return "\n".join(lines)


def _section_of(path: str) -> str:
    """The anchor of the config page's section holding a dotted path."""
    return path.split(".")[0].replace("_", "-") if "." in path else "top-level"


def flag_of_path() -> dict[str, tuple[str, str]]:
    """config path -> (the `nasforge search` flag that sets it, its help), read from the parser itself."""
    from nasforge.cli import build_parser

    commands, _ = _subcommands(build_parser())
    out = {}
    for action in commands["search"]._actions:
        path = CONFIG_PATH.search(action.help or "")
        if path and action.option_strings:
            out[path.group(1)] = (action.option_strings[0], action.help[: path.start()])
    return out


# -- the configuration --------------------------------------------------------------------------
def _type(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in schema:
        return defs[schema["$ref"].split("/")[-1]].get("title", "object")
    if "enum" in schema:
        return " \\| ".join(_code(json.dumps(v)) for v in schema["enum"])
    if "const" in schema:
        return _code(json.dumps(schema["const"]))
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(_type(s, defs) for s in schema[key])
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items")
        if isinstance(items, dict) and items:
            return f"list of {_type(items, defs)}"
        if "prefixItems" in schema:
            return "[" + ", ".join(_type(s, defs) for s in schema["prefixItems"]) + "]"
        return "list"
    if kind == "object":
        keys = schema.get("propertyNames")
        values = schema.get("additionalProperties")
        key_text = _type(keys, defs) if isinstance(keys, dict) else "name"
        return f"mapping of {key_text} to {_type(values, defs)}" if isinstance(values, dict) else "mapping"
    names = {"integer": "int", "number": "float", "string": "text", "boolean": "bool", "null": "null"}
    return names.get(kind, kind or "any")


def _bounds(schema: dict[str, Any]) -> str:
    parts = []
    for key, sign in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<"),
                      ("minLength", "length >="), ("minItems", "items >=")):
        if key in schema:
            parts.append(f"{sign} {schema[key]}")
    if "pattern" in schema:
        parts.append(f"matches {_code(schema['pattern'])}")
    items = schema.get("items")
    if isinstance(items, dict) and (inner := _bounds(items)):
        parts.append(f"each {inner}")
    for key in ("anyOf", "oneOf"):
        for option in schema.get(key, ()):
            if inner := _bounds(option):
                parts.append(inner)
    return ", ".join(parts)


def _model_refs(schema: dict[str, Any]) -> list[str]:
    """The models a field holds (one, or the variants of a discriminated union)."""
    if "$ref" in schema:
        return [schema["$ref"].split("/")[-1]]
    return [s["$ref"].split("/")[-1] for key in ("oneOf", "anyOf") for s in schema.get(key, ()) if "$ref" in s]


def _registered_options() -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Config fields whose options come from a registry rather than the config module (the
    strategy: each registered strategy declares its own options model) -> (name, its JSON schema)."""
    try:
        from nasforge.registry import STRATEGIES
        from nasforge.strategy.factory import options_model
    except ImportError:  # a version without registries: the options are in the config schema itself
        return {}
    return {"strategy": [(name, options_model(name).model_json_schema()) for name in STRATEGIES.names()]}


def config_markdown() -> str:
    from nasforge.config import SearchConfig

    schema = SearchConfig.model_json_schema()
    flags = flag_of_path()
    registered = _registered_options()
    sections: list[str] = []

    def section(title: str, model: dict[str, Any], defs: dict[str, Any], prefix: str, anchor: str, intro: str = "") -> None:
        rows = ["| field | type | default | limits | flag | what it sets |", "| --- | --- | --- | --- | --- | --- |"]
        nested: list[tuple[str, str, dict[str, Any]]] = []
        for name, field in model.get("properties", {}).items():
            path = prefix + name
            refs = [] if path in registered else _model_refs(field)
            required = "default" not in field and name in model.get("required", ())
            if path in registered:
                shown, kind = "see below", f"[one of {len(registered[path])}](#{_anchor(path, '', False)})"
            elif refs:
                nested += [(path, ref, field) for ref in refs]
                shown = "see below"
                kind = " or ".join(f"[{defs[r].get('title', r)}](#{_anchor(path, r, len(refs) > 1)})" for r in refs)
            else:
                shown = "required" if required else "–" if field.get("default") is None else _code(json.dumps(field["default"]))
                kind = _type(field, defs)
            flag, flag_help = flags.get(path, ("", ""))
            text = field.get("description") or flag_help  # a field without a description of its own: its flag's help
            rows.append(f"| {_code(name)} | {kind} | {shown} | {_bounds(field) or '–'} | {_code(flag) if flag else '–'} | "
                        f"{_cell(text)} |")
        sections.extend([f"## {title} {{ #{anchor} }}", ""] + ([intro, ""] if intro else []) + rows + [""])
        for path in (prefix + name for name in model.get("properties", {})):
            if path in registered:
                variants(path, [(tag, options, options.get("$defs", {})) for tag, options in registered[path]],
                         f"Each registered `{path}` declares its own options (a plug-in registered under "
                         "its name brings its own).")
        by_path: dict[str, list[tuple[str | None, dict[str, Any], dict[str, Any]]]] = {}
        for path, ref, _ in nested:
            by_path.setdefault(path, []).append((_variant_tag(defs[ref]), defs[ref], defs))
        for path, found in by_path.items():
            if len(found) > 1:
                variants(path, found, "")
            else:
                variant = found[0][1]
                section(path, variant, defs, path + ".", _anchor(path, "", False), variant.get("description", ""))

    def variants(path: str, found: list[tuple[str | None, dict[str, Any], dict[str, Any]]], intro: str) -> None:
        """A field that holds one of several models, chosen by its `name`: one section naming them, one per model."""
        links = ", ".join(f"[{tag}](#{_anchor(path, tag or '', True)})" for tag, _, _ in found)
        sections.extend([f"## {path} {{ #{_anchor(path, '', False)} }}", "",
                         (intro + " " if intro else "") + f"One of these, chosen by `{path}.name`: {links}.", ""])
        for tag, model, defs in found:
            note = f"Chosen by `{path}.name: {tag}` (or `{path}: {tag}` for its defaults)."
            description = model.get("description", "")
            section(f"{path} (name: {tag})", model, defs, path + ".", _anchor(path, tag or "", True),
                    (description + " " if description else "") + note)

    section("Top level", schema, schema.get("$defs", {}), "", "top-level", "A YAML config file holds these fields; flags "
            "and keyword arguments of `nasforge.search()` override them. An unknown or ill-typed field is an error naming it.")
    return "\n".join(sections)


def _variant_tag(model: dict[str, Any]) -> str | None:
    """The `name` a variant of a discriminated union answers to."""
    name_field = model.get("properties", {}).get("name", {})
    return name_field.get("const") or (name_field.get("enum") or [None])[0]


def _anchor(path: str, variant: str, union: bool) -> str:
    return (path + ("-" + variant.lower() if union else "")).replace(".", "-").replace("_", "-")


# -- stored formats -----------------------------------------------------------------------------
def store_schema_markdown() -> str:
    from nasforge.store import SCHEMA, STORE_FILE

    return f"The tables of `{STORE_FILE}` (`nasforge.store.SCHEMA`):\n\n```sql\n{SCHEMA.strip()}\n```\n"


def genomes_markdown() -> str:
    import numpy as np

    from nasforge.space import CellSpace, LayerGraphSpace, SequenceSpace

    spaces = [
        (LayerGraphSpace((1, 8, 8), 10), "an 8×8 grey image, 10 classes"),
        (CellSpace((1, 8, 8), 10), "the same task"),
        (SequenceSpace(1000, 2, 64, "classify"), "sentences of up to 64 tokens over a 1,000-word vocabulary, 2 classes"),
    ]
    out = []
    for space, task in spaces:
        genome = space.sample(np.random.default_rng(0))
        text = _json(space.to_json(genome))
        out += [f"### `{space.name}`", "", f"A genome sampled by `{type(space).__name__}` for {task} (seed 0); "
                f"`describe` prints it as `{space.describe(genome)}`.", "", "```json", text, "```", ""]
    return "\n".join(out)


@functools.cache
def _example_run() -> dict[str, Any]:
    """A one-trial search on digits and its export, in a temporary folder; what the format pages show."""
    import contextlib
    import io

    import nasforge
    from nasforge.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            nasforge.search({"space": {"channels": [16], "kernels": [3], "min_blocks": 1, "max_blocks": 1, "dense_units": [32]}},
                            dataset="digits", strategy="random", trials=1, epochs=3, batch_size=32, seed=0, out=str(run),
                            progress=False)
            export = nasforge.export_trial(run, Path(tmp) / "model")
        store = Store.in_dir(run)
        try:
            meta = {key: store.get(key) for (key,) in store.db.execute("SELECT key FROM meta ORDER BY key")}
            trial = store.trials()[0].to_dict()
        finally:
            store.close()

        def listing(folder: Path) -> list[str]:
            return sorted(str(p.relative_to(folder)) + ("/" if p.is_dir() else "") for p in folder.rglob("*"))

        return {"run": listing(run), "meta": meta, "trial": trial, "export": listing(export),
                "genome_json": json.loads((export / "genome.json").read_text())}


def _shorten(value: Any, limit: int = 12) -> Any:
    """Long lists cut to their first items and nested lists (confusion matrices) to their first row,
    so an example stays readable."""
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        return [_shorten(value[0], limit), f"... {len(value) - 1} more rows"]
    if isinstance(value, list) and len(value) > limit:
        return [_shorten(v, limit) for v in value[:limit]] + [f"... {len(value) - limit} more"]
    if isinstance(value, dict):
        return {k: _shorten(v, limit) for k, v in value.items()}
    return value


def _json(value: Any, indent: str = "") -> str:
    """JSON with one mapping entry per line, but short lists and mappings of plain values on one line."""
    flat = json.dumps(value)
    if not isinstance(value, (dict, list)) or len(flat) + len(indent) <= 100:
        return flat
    inner = indent + "  "
    if isinstance(value, list):
        return "[\n" + ",\n".join(inner + _json(v, inner) for v in value) + "\n" + indent + "]"
    return "{\n" + ",\n".join(f"{inner}{json.dumps(k)}: {_json(v, inner)}" for k, v in value.items()) + "\n" + indent + "}"


def run_example_markdown() -> str:
    example = _example_run()
    meta = _shorten(example["meta"])
    trial = _shorten({k: v for k, v in example["trial"].items()})
    return "\n".join([
        "A one-trial search on digits (`nasforge.search(dataset=\"digits\", trials=1, epochs=3, ...)`, run while these docs "
        "were built, in a one-block space: a network of a few hundred parameters trained for seconds, so its scores say nothing) "
        "leaves this run directory:", "", "```text", *example["run"], "```", "",
        "Its `meta` table, one JSON value per key:", "", "```json", _json(meta), "```", "",
        "and its one row of `trials` (JSON columns decoded):", "", "```json", _json(trial), "```", ""])


def export_example_markdown() -> str:
    example = _example_run()
    return "\n".join([
        "`nasforge.export_trial(run, out)` (`nasforge export RUN --best --out OUT`) of that run wrote:", "", "```text",
        *example["export"], "```", "", "and this `genome.json`:", "", "```json",
        _json(_shorten(example["genome_json"])), "```", ""])


# -- the notebook -------------------------------------------------------------------------------
def notebook_markdown(path: Path = ROOT / "examples" / "quickstart.ipynb") -> str:
    notebook = json.loads(path.read_text())
    out = []
    for cell in notebook["cells"]:
        source = "".join(cell["source"]).rstrip()
        if not source:
            continue
        if cell["cell_type"] == "markdown":  # its headings one level down: the page has its own title
            out += [re.sub(r"^#", "##", source, flags=re.MULTILINE), ""]
        elif cell["cell_type"] == "code":
            out += ["```python", source, "```", ""]
    return "\n".join(out)


# -- benchmark results --------------------------------------------------------------------------
@functools.cache
def _results() -> Any:
    """results.py beside this file (MkDocs loads hooks by path, so the folder is not a package)."""
    spec = importlib.util.spec_from_file_location("nasforge_docs_results", Path(__file__).with_name("results.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATORS: dict[str, Callable[[], str]] = {
    "cli": cli_markdown,
    "config": config_markdown,
    "store-schema": store_schema_markdown,
    "genomes": genomes_markdown,
    "run-example": run_example_markdown,
    "export-example": export_example_markdown,
    "notebook": notebook_markdown,
    "results-nb201": lambda: _results().nb201_markdown(),
    "results-cheaper-evaluation": lambda: _results().cheaper_evaluation_markdown(),
}


def expand(markdown: str, where: str = "page") -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise KeyError(f"{where}: unknown generated block {name!r}; known: {', '.join(GENERATORS)}")
        return GENERATORS[name]()

    return MARKER.sub(replace, markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    from mkdocs.exceptions import PluginError

    try:
        return expand(markdown, page.file.src_uri)
    except KeyError as exc:
        raise PluginError(str(exc.args[0])) from None
