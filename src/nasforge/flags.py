"""Command-line flags derived from the pydantic config schema, so that no field is described twice.

Every scalar field of a section becomes a flag named after it (`training.epochs` -> `--epochs`), a
section's `name` field takes the section's own name (`strategy.name` -> `--strategy`), and tuple
fields take comma-separated values (`--channels 8,16,32`). A field or section adjusts this through
`json_schema_extra`: `{"flag": "other_name"}` renames a field's flag, `{"flag": None}` keeps it to
config files, `{"flag_type": "str"}` takes the text as it is (fields whose validator parses text),
`{"repeat": True}` makes a flag that is given once per item; a section's `{"flag_prefix": "p_"}`
prefixes all of its flags. Two fields that would share a flag are an error at start-up, so a new
field cannot silently shadow another.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo


@dataclass(frozen=True)
class Flag:
    name: str  # without the dashes, with underscores: `--batch-size` is "batch_size"
    path: str  # dotted path in the config: "training.batch_size"
    kind: str  # "int", "float", "str", "bool", "list" (comma-separated) or "repeat" (one item per use)
    help: str

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    def convert(self, value: Any) -> Any:
        """A flag's text (CLI) or Python value (`search(**options)`) as the config field takes it."""
        if self.kind == "list" and isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


def _extra(info: FieldInfo | None) -> dict[str, Any]:
    extra = info.json_schema_extra if info is not None else None
    return extra if isinstance(extra, dict) else {}


def _unwrap(annotation: Any) -> Any:
    """The annotation without Optional / Annotated / SerializeAsAny wrappers."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            metadata = getattr(annotation, "__metadata__", None)
            if metadata is not None and hasattr(annotation, "__origin__"):
                annotation = annotation.__origin__
                continue
            return annotation


def _kind(annotation: Any) -> str | None:
    """The flag kind of a field's type, or None for types a flag cannot carry (mappings, unions)."""
    t = _unwrap(annotation)
    origin = typing.get_origin(t)
    if t is bool:
        return "bool"
    if t in (int, float, str):
        return t.__name__
    if origin is Literal:
        values = typing.get_args(t)
        return "str" if all(isinstance(v, str) for v in values) else None
    if origin in (tuple, list):
        items = [a for a in typing.get_args(t) if a is not Ellipsis]
        return "list" if items and all(_kind(a) in ("int", "float", "str", "bool") for a in items) else None
    return None


def _section(annotation: Any) -> type[BaseModel] | None:
    t = _unwrap(annotation)
    return t if isinstance(t, type) and issubclass(t, BaseModel) else None


def _describe(info: FieldInfo, path: str) -> str:
    if not info.description:
        raise ValueError(f"config field {path} has a flag but no description (its help text)")
    return info.description


def derive(model: type[BaseModel], extra_sections: dict[str, Iterable[tuple[str, type[BaseModel]]]] | None = None) -> dict[str, Flag]:
    """The flags of `model`'s fields. `extra_sections` maps a section's field name to (owner, model)
    pairs whose fields also live there (each registered strategy's options under `strategy`): fields
    of the same name and path merge into one flag whose help names the owners that have it."""
    flags: dict[str, Flag] = {}
    owners: dict[str, list[str]] = {}

    def add(flag: Flag, owner: str | None = None) -> None:
        current = flags.get(flag.name)
        if current is not None and current.path != flag.path:
            raise ValueError(f"flag --{flag.name} would set both {current.path} and {flag.path}; give one a "
                             "json_schema_extra={'flag': ...} of its own")
        if current is None:
            flags[flag.name] = flag
        if owner:
            owners.setdefault(flag.name, []).append(owner)

    def walk(section: type[BaseModel], prefix: str, section_name: str, flag_prefix: str, owner: str | None) -> None:
        for name, info in section.model_fields.items():
            path = f"{prefix}{name}"
            extra = _extra(info)
            child = _section(info.annotation)
            if child is not None and "flag_type" not in extra:
                child_extra = child.model_config.get("json_schema_extra")
                given = child_extra.get("flag_prefix", "") if isinstance(child_extra, dict) else ""
                child_prefix = given if isinstance(given, str) else ""
                walk(child, f"{path}.", name, child_prefix, None)
                for owner_name, more in (extra_sections or {}).get(name, ()):
                    walk(more, f"{path}.", name, child_prefix, owner_name)
                continue
            if ("flag" in extra and extra["flag"] is None) or (owner is not None and name == "name"):
                continue
            kind = "repeat" if extra.get("repeat") else extra.get("flag_type") or _kind(info.annotation)
            if kind is None:
                continue  # a mapping or a union of shapes: config files only
            if "flag" in extra:
                flag_name = extra["flag"]
            elif name == "name" and section_name:
                flag_name = section_name
            else:
                flag_name = flag_prefix + name
            add(Flag(flag_name, path, kind, _describe(info, path)), owner)

    walk(model, "", "", "", None)
    for name, who in owners.items():
        flags[name] = Flag(name, flags[name].path, flags[name].kind, f"{flags[name].help} ({', '.join(who)})")
    return flags


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path in a nested mapping; a section given by its name alone (`strategy:
    evolution`) becomes a mapping with that name first."""
    *parents, leaf = path.split(".")
    node = data
    for key in parents:
        child = node.get(key)
        if isinstance(child, str):
            child = {"name": child}
        elif isinstance(child, BaseModel):
            child = child.model_dump()
        if not isinstance(child, dict):
            child = {}
        node[key] = child
        node = child
    node[leaf] = value
