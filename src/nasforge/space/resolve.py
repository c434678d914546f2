"""What a user may give as a search space, and how a run's space is found again later.

`nasforge.search(space=...)` takes a registered name, a SearchSpace instance, a define-by-run
model function (function.py), or a SearchSpace subclass or factory; YAML names the last three by
import path (`space: {function: "mypkg.models:make_model"}`). Classes and factories get the task
as the keywords they accept (`input_shape`, `num_classes`) plus `space.options`.

A run records its space as `{"name", "config"}` (+ `"class"`: the import path of a space class that
is not registered under its name), from which `space_from_record` rebuilds it in any process: a
registered name first, then the recorded class; a define-by-run space imports its function by the
module:qualname in its config. Where that cannot work (a function defined in a script, a class that
is not importable), the error says what to pass (`nasforge.load(path, space=make_model)`), and the
caller's object is used with the recorded config.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from ..registry import SPACES, import_object, import_path
from .base import SearchSpace
from .function import FunctionSpace
from .portable import function_label, function_path

# Keyword arguments a space class or factory may take to learn the task it searches for.
TASK_KEYS = ("input_shape", "num_classes")


def is_model_function(obj: Any) -> bool:
    """Whether `obj` is a define-by-run model function `f(c) -> nn.Module` rather than a factory of
    spaces: a callable that is no class and no SearchSpace, whose one required positional parameter
    is annotated as Choices or not annotated, that takes none of the task keywords, and is not
    annotated as returning a SearchSpace."""
    if isinstance(obj, (type, SearchSpace)) or not callable(obj):
        return False
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return False
    params = list(signature.parameters.values())
    if any(p.name in TASK_KEYS for p in params):
        return False
    returns = signature.return_annotation
    if isinstance(returns, str) and returns.split(".")[-1].strip("'\"").endswith("Space"):
        return False
    if isinstance(returns, type) and issubclass(returns, SearchSpace):
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in params if p.kind in positional and p.default is inspect.Parameter.empty]
    if len(required) != 1:
        return False
    note = required[0].annotation
    return note is inspect.Parameter.empty or "Choices" in (note if isinstance(note, str) else getattr(note, "__name__", ""))


def space_reference(obj: Any) -> str:
    """The `space.function` text for a space given as a Python object: module:qualname of the
    function, class or factory (of an instance: its class), importable or not."""
    target = type(obj) if isinstance(obj, SearchSpace) else obj
    return import_path(target) or function_path(target)


def _label(obj: Any) -> str:
    return function_label(obj) if callable(obj) else type(obj).__name__


def call_factory(factory: Any, task: Mapping[str, Any], options: Mapping[str, Any]) -> SearchSpace:
    """A space from a class or factory, given the task keywords it accepts and the user's options."""
    params: Mapping[str, inspect.Parameter]
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in task.items() if k in params or takes_any}
    kwargs.update(options)
    try:
        space = factory(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"space: cannot make a space with {_label(factory)}({', '.join(kwargs)}): {exc} "
                          "(a space class or factory takes the task as input_shape= / num_classes= where it wants them, "
                          "and space.options)") from None
    if not isinstance(space, SearchSpace):
        raise ConfigError(f"space: {_label(factory)} returned {type(space).__name__}, not a SearchSpace (a model function "
                          "takes one argument, the Choices, and returns the nn.Module)")
    return space


def instantiate(obj: Any, task: Mapping[str, Any], options: Mapping[str, Any] | None = None) -> SearchSpace:
    """The SearchSpace an object given as a space stands for (module docstring)."""
    options = dict(options or {})
    if isinstance(obj, SearchSpace):
        if options:
            raise ConfigError("space.options: a space given as an instance is already made; pass its options to it")
        return obj
    if is_model_function(obj):
        if options:
            raise ConfigError("space.options: a model function takes no options (ask for them with c.choice / c.int)")
        return FunctionSpace(obj)
    if callable(obj):
        return call_factory(obj, task, options)
    raise ConfigError(f"space: expected a space name, a SearchSpace, a model function f(c) -> nn.Module, or a SearchSpace "
                      f"class or factory; got {type(obj).__name__}")


def make_user_space(name: str, function: str | None, options: Mapping[str, Any], task: Mapping[str, Any],
                    given: Any = None) -> SearchSpace:
    """The space of a search whose space is the user's: an object given in Python, an import path
    (`space.function`), or a registered name that is not one of the built-in data-driven spaces."""
    if given is None and function is not None:
        try:
            given = import_object(function)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"space.function: cannot import {function!r} ({type(exc).__name__}: {exc})") from None
    if given is None:
        given = SPACES.get_or_error(name, "space.name")
    return instantiate(given, task, options)


def space_record(space: SearchSpace) -> dict[str, Any]:
    """How a run remembers its space: name and config, and the class's import path where the name
    alone does not lead back to it."""
    config = space.config()
    try:
        json.dumps(config)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"space: {type(space).__name__}.config() must return JSON data, so that the run can rebuild the "
                          f"space later ({exc})") from None
    record: dict[str, Any] = {"name": space.name, "config": config}
    registered = None
    if space.name in SPACES:
        try:
            registered = SPACES[space.name]
        except (ImportError, AttributeError):
            registered = None
    if registered is not type(space):
        record["class"] = import_path(type(space)) or function_path(type(space))
    return record


def make_space(name: str, config: Mapping[str, Any]) -> SearchSpace:
    """Rebuild a registered space from `SearchSpace.config()` (as stored with studies and exports)."""
    factory = SPACES.get_or_error(name)
    if isinstance(factory, type) and issubclass(factory, SearchSpace):
        return factory.from_config(dict(config))
    if is_model_function(factory):
        return FunctionSpace(factory, decisions=config.get("decisions"))
    space = factory(**config)
    if not isinstance(space, SearchSpace):
        raise ConfigError(f"the search space factory registered as {name!r} returned {type(space).__name__}, not a SearchSpace")
    return space


def space_from_record(record: Mapping[str, Any], given: Any = None) -> SearchSpace:
    """The space a run (or an export) recorded (module docstring). `given`: the user's own copy of
    the space's function, class or instance, for a space that cannot be found by import here."""
    name, config = record.get("name"), dict(record.get("config") or {})
    if not name:
        raise ConfigError("this run records no search space (it was made before spaces were recorded, or is damaged)")
    if given is not None:
        if isinstance(given, FunctionSpace):
            return given
        if isinstance(given, SearchSpace):
            return given
        if is_model_function(given):
            if name != FunctionSpace.name:
                raise ConfigError(f"space: this run searched the {name!r} space, not a model function")
            return FunctionSpace(given, decisions=config.get("decisions"), file=config.get("file"))
        if isinstance(given, type) and issubclass(given, SearchSpace):
            return given.from_config(config)
        raise ConfigError(f"space: give the run's model function, SearchSpace class or instance, got {type(given).__name__}")
    if name in SPACES:
        return make_space(name, config)
    path = record.get("class")
    if path:
        how = (f"register it (nasforge.register_space({name!r}, {path.rpartition(':')[2]})) or pass it: "
               f"nasforge.load(path, space={path.rpartition(':')[2]})")
        if path.startswith("__main__:"):
            raise ConfigError(f"the run's search space class {path} was defined in a script and cannot be imported from here; {how}")
        try:
            cls = import_object(path)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"cannot import the run's search space class {path} ({type(exc).__name__}: {exc}); {how}") from None
        return cls.from_config(config)
    raise ConfigError(f"the run's search space {name!r} is not registered in this process; register it "
                      f"(nasforge.register_space({name!r}, ...)) or pass it: nasforge.load(path, space=...)")


def load_space_object(text: str) -> Any:
    """The object `module:qualname` or `path/to/file.py:qualname` names (the command line's way to hand
    over a model function or space class that a run cannot import by itself, e.g. one defined in a
    script; the file is imported as a module, so its search must sit under `if __name__ == '__main__':`)."""
    source, sep, qualname = text.rpartition(":")
    if not sep or not source or not qualname:
        raise ConfigError(f"--space: {text!r} is not MODULE:NAME or FILE.py:NAME")
    if source.endswith(".py"):
        import importlib.util
        import sys
        from pathlib import Path

        path = Path(source).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"--space: no file {source}")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"--space: cannot import {source}")
        module = importlib.util.module_from_spec(spec)
        sys.modules.setdefault(path.stem, module)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise ConfigError(f"--space: importing {source} raised {type(exc).__name__}: {exc}") from None
        found: Any = module
        for part in qualname.split("."):
            found = getattr(found, part, None)
        if found is None:
            raise ConfigError(f"--space: {source} has no {qualname}")
        return found
    try:
        return import_object(f"{source}:{qualname}")
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"--space: cannot import {text!r} ({type(exc).__name__}: {exc})") from None


def check_portable(space: SearchSpace, executor: str) -> None:
    """Refuse, before a run starts, a space that worker processes cannot receive: pool and Ray
    workers rebuild it in their own process (a model function by its module and name)."""
    import pickle

    try:
        pickle.dumps(space, protocol=pickle.HIGHEST_PROTOCOL)
    except ConfigError as exc:
        raise ConfigError(f"executor: {exc}") from None
    except Exception as exc:  # pickle raises several types; the message is what helps
        raise ConfigError(f"executor: the {executor} executor's workers need the search space in their own process, but "
                          f"{type(space).__name__} cannot be pickled ({type(exc).__name__}: {exc}); use the serial executor "
                          "or make the space picklable") from None


__all__ = ["TASK_KEYS", "call_factory", "check_portable", "instantiate", "is_model_function", "load_space_object", "make_space",
           "make_user_space", "space_from_record", "space_record", "space_reference"]
