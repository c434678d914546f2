"""A SearchConfig from YAML (safe_load), a mapping, or flags / keyword arguments, with every bad
field named in one ConfigError; and the flag table derived from the schema."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import ConfigError
from ..flags import Flag, derive, set_path
from ..registry import EXECUTORS, SPACES, STRATEGIES
from ..strategy.factory import options_model, parse_options
from .search import SearchConfig, error_lines


def _format(lines: list[str]) -> str:
    return "invalid configuration:\n  " + "\n  ".join(lines)


def parse_config(data: Any) -> SearchConfig:
    """Validate a mapping into a SearchConfig; ConfigError names every bad field."""
    if not isinstance(data, dict):
        raise ConfigError(f"invalid configuration: expected a mapping of fields, got {type(data).__name__}")
    data = dict(data)
    lines: list[str] = []
    if "strategy" in data:
        # Validated on its own first, so that its errors carry their own field paths.
        try:
            data["strategy"] = parse_options(data["strategy"])
        except ValidationError as exc:
            lines += error_lines(exc, "strategy")
            data.pop("strategy")
        except ConfigError as exc:
            lines.append(str(exc))
            data.pop("strategy")
    try:
        config = SearchConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format(lines + error_lines(exc))) from None
    except (TypeError, ValueError, RecursionError) as exc:  # defensive: never let a traceback through
        raise ConfigError(f"invalid configuration: {exc}") from None
    if lines:
        raise ConfigError(_format(lines))
    return config


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of fields, got {type(data).__name__}")
    return data


def flags() -> dict[str, Flag]:
    """Every command-line flag / `search()` keyword option, derived from the schema and the
    registered strategies' options (so a strategy registered now brings its flags with it)."""
    sections = []
    for name in STRATEGIES.names():
        try:
            sections.append((name, options_model(name)))
        except ConfigError:  # a plug-in that fails to import has no flags; choosing it says why
            continue
    table = derive(SearchConfig, {"strategy": sections})
    for flag, registry in (("strategy", STRATEGIES), ("executor", EXECUTORS), ("space", SPACES)):
        table[flag] = replace(table[flag], help=f"{table[flag].help}; known: {', '.join(registry.names())}")
    return table


def build_config(base: dict[str, Any] | None = None, **options: Any) -> SearchConfig:
    """A config from an optional mapping plus flag-style keyword options (None means 'not given')."""
    data: dict[str, Any] = copy.deepcopy(base or {})
    table = flags()
    unknown = sorted(set(options) - set(table))
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(table))}")
    # Section names first, so a flag that picks another strategy (executor) drops the options of the
    # one the file named rather than mixing them.
    for name in sorted(options, key=lambda n: not table[n].path.endswith(".name")):
        value = options[name]
        if value is None:
            continue
        flag = table[name]
        section = flag.path.split(".")[0]
        if flag.path.endswith(".name") and section in ("strategy", "executor", "space"):
            current = data.get(section)
            current_name = current.get("name") if isinstance(current, dict) else current
            if current_name != value:
                data[section] = {"name": value}
        set_path(data, flag.path, flag.convert(value))
    return parse_config(data)


def to_dict(config: SearchConfig) -> dict[str, Any]:
    return config.model_dump(mode="json")
