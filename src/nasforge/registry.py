"""Registries: the only source of the names that configs, the CLI and the Python API accept.

There is one registry per kind of plug-in: search spaces, strategies, evaluators, executors and
data sources. The built-ins are listed here by import path, so knowing the names costs no import
(the CLI's choices and the config schema are derived from them); the object behind a name is
imported the first time it is asked for. A user adds their own with `register_*` (or the
`@register_strategy("name")` decorator form), and an installed package adds its own through an
entry point in the matching group, e.g. in its pyproject.toml:

    [project.entry-points."nasforge.strategies"]
    mine = "mypkg.search:MyStrategy"

Entry points are read once, the first time a registry is listed or looked up; a name already
registered in the process wins over a plug-in of the same name, and a plug-in that fails to import
is logged and skipped, so one broken package cannot stop a search that does not use it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar, overload

from .errors import ConfigError

log = logging.getLogger("nasforge")

T = TypeVar("T")

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


def import_object(path: str) -> Any:
    """The object an import path `package.module:qualname` names (ImportError / AttributeError
    propagate; callers turn them into errors naming what they were resolving)."""
    module_name, sep, qualname = path.partition(":")
    if not sep or not module_name or not qualname:
        raise ImportError(f"{path!r} is not an import path of the form 'package.module:name'")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def import_path(obj: Any) -> str | None:
    """`module:qualname` of a module-level class or function, or None where the object cannot be
    found again by import (lambdas, closures, objects defined in __main__ or inside functions)."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<" in qualname:
        return None
    try:
        found = import_object(f"{module}:{qualname}")
    except (ImportError, AttributeError):
        return None
    return f"{module}:{qualname}" if found is obj else None


class Registry(Mapping[str, T], Generic[T]):
    """Names -> objects of one kind (classes or factories). Read like a dict; `get_or_error`
    raises a ConfigError that lists the known names."""

    def __init__(self, kind: str, group: str, builtins: Mapping[str, str] | None = None):
        self.kind = kind  # "strategy", "search space", ...: used in messages
        self.group = group  # the entry-point group third-party packages register in
        self._lazy: dict[str, str] = dict(builtins or {})  # name -> import path, resolved on first use
        self._entries: dict[str, T] = {}
        self._plugins_read = False

    # -- adding ---------------------------------------------------------------------------------
    @overload
    def register(self, name: str, obj: None = None, *, replace: bool = False) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T, *, replace: bool = False) -> T: ...

    def register(self, name: str, obj: T | None = None, *, replace: bool = False) -> T | Callable[[T], T]:
        """Add `obj` under `name`; without `obj`, a decorator. Registering another object under a
        name already taken is an error unless `replace` (re-registering the same object is not)."""
        if obj is None:
            return lambda target: self.register(name, target, replace=replace)
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"{self.kind} name {name!r}: use letters, digits, '_', '-' or '.', starting with a letter")
        if not replace and name in self.names():
            current = self._entries.get(name)
            if current is not obj:
                raise ValueError(f"a {self.kind} named {name!r} is already registered; pick another name or pass replace=True")
        self._lazy.pop(name, None)
        self._entries[name] = obj
        return obj

    def adopt(self, obj: T) -> str:
        """The name a config records for a class or factory handed over as a Python object: its
        registered name, else its import path `module:qualname`, under which it is registered for
        this process (an object from `__main__` or a notebook cannot be imported again in a new
        process: resuming there needs it handed over again, and the error says so)."""
        for name, entry in self._entries.items():
            if entry is obj:
                return name
        module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
        if not module or not qualname:
            raise ConfigError(f"a {self.kind} must be a registered name, a class or a function, got {type(obj).__name__}")
        name = import_path(obj) or f"{module}:{qualname}"
        self._entries[name] = obj
        return name

    def unregister(self, name: str) -> None:
        """Remove a name (tests and notebooks that register throw-away plug-ins)."""
        self._entries.pop(name, None)
        self._lazy.pop(name, None)

    # -- reading --------------------------------------------------------------------------------
    def names(self) -> list[str]:
        """The registered names (not the import paths of objects adopted in this process)."""
        self._read_plugins()
        return sorted(n for n in {*self._lazy, *self._entries} if ":" not in n)

    def __getitem__(self, name: str) -> T:
        if name in self._entries:
            return self._entries[name]
        self._read_plugins()
        if name in self._lazy:
            path = self._lazy.pop(name)
            self._entries[name] = import_object(path)
            return self._entries[name]
        if name in self._entries:
            return self._entries[name]
        raise KeyError(name)

    def get_or_error(self, name: str, where: str | None = None) -> T:
        """The entry `name` (or the object an import path `package.module:name` names, so an
        unregistered class can still be given by where it lives), or a ConfigError naming the field
        (`where`) and the known names."""
        prefix = f"{where}: " if where else ""
        try:
            if ":" in name and name not in self._entries:
                return import_object(name)
            return self[name]
        except KeyError:
            raise ConfigError(f"{prefix}unknown {self.kind} {name!r}; known: {', '.join(self.names())}") from None
        except (ImportError, AttributeError) as exc:
            hint = (f" (one defined in __main__ or a notebook cannot be imported by a new process: hand the {self.kind} "
                    "over again, as when the search started)") if name.startswith("__main__:") else ""
            raise ConfigError(f"{prefix}the {self.kind} {name!r} cannot be imported: {exc}{hint}") from None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._entries or name in self.names())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"

    def _read_plugins(self) -> None:
        if self._plugins_read:
            return
        self._plugins_read = True
        for point in importlib.metadata.entry_points(group=self.group):
            if point.name in self._entries or point.name in self._lazy:
                continue  # registered in this process (or built in): that one wins
            if not _NAME.match(point.name):
                log.warning("ignoring %s plug-in %r from %s: not a valid name", self.kind, point.name, point.value)
                continue
            self._lazy[point.name] = point.value

    def reload_plugins(self) -> None:
        """Read the entry points again (after installing a package in a running process)."""
        self._plugins_read = False
        self._read_plugins()


SPACES: Registry[Any] = Registry("search space", "nasforge.spaces", {
    "layers": "nasforge.space.layers:LayerGraphSpace",
    "cell": "nasforge.space.cell:CellSpace",
    "sequence": "nasforge.space.sequence:SequenceSpace",
    # A define-by-run model function, named by the config's space.function (space/function.py).
    "function": "nasforge.space.function:FunctionSpace",
})

STRATEGIES: Registry[Any] = Registry("strategy", "nasforge.strategies", {
    "random": "nasforge.strategy.random:RandomSearch",
    "evolution": "nasforge.strategy.evolution:RegularizedEvolution",
    "genetic": "nasforge.strategy.genetic:GeneticAlgorithm",
    "reinforce": "nasforge.strategy.reinforce:Reinforce",
    "local": "nasforge.strategy.local:LocalSearch",
    "predictor": "nasforge.strategy.predictor:PredictorEvolution",
    "nsga2": "nasforge.strategy.nsga2:NSGA2",
})

EXECUTORS: Registry[Any] = Registry("executor", "nasforge.executors", {
    "serial": "nasforge.execute.serial:SerialExecutor",
    "pool": "nasforge.execute.pool:PoolExecutor",
    "ray": "nasforge.execute.ray:RayExecutor",
})

# Evaluators: classes taking (space, data, training, ...); `training` is the built-in trainer,
# `functional` runs the user's `evaluate(model, ctx)`, `language_model` trains causal models.
EVALUATORS: Registry[Any] = Registry("evaluator", "nasforge.evaluators", {
    "training": "nasforge.evaluate.training:TrainingEvaluator",
    "functional": "nasforge.evaluate.functional:FunctionalEvaluator",
    "language_model": "nasforge.evaluate.language_model:LanguageModelEvaluator",
})
# `SOURCE:PATH` data: a loader (path, data.datasets.SourceOptions) -> arrays as a .npz gives them
# ({"x", "y"} and optionally "x_val", "y_val", "x_test", "y_test", "groups").
DATA_SOURCES: Registry[Any] = Registry("data source", "nasforge.data_sources", {
    "fsdd": "nasforge.data.datasets:fsdd_arrays",
    "images": "nasforge.data.datasets:image_arrays",
})


def register_space(name: str, factory: Any = None, *, replace: bool = False) -> Any:
    """Register a search space under `name`: a define-by-run model function `f(c: Choices) -> nn.Module`,
    a SearchSpace subclass, or a factory returning a SearchSpace (classes and factories get the task
    as the `input_shape=` / `num_classes=` keywords they accept, plus the config's space.options)."""
    return SPACES.register(name, factory, replace=replace)


def register_strategy(name: str, factory: Any = None, *, replace: bool = False) -> Any:
    """Register a Strategy subclass (or a factory `(space, seed, **options) -> Strategy`) under `name`."""
    return STRATEGIES.register(name, factory, replace=replace)


def register_executor(name: str, factory: Any = None, *, replace: bool = False) -> Any:
    """Register an Executor subclass (or a factory) under `name`."""
    return EXECUTORS.register(name, factory, replace=replace)


def register_evaluator(name: str, factory: Any = None, *, replace: bool = False) -> Any:
    """Register an Evaluator subclass (or a factory) under `name`."""
    return EVALUATORS.register(name, factory, replace=replace)


def register_data_source(name: str, factory: Any = None, *, replace: bool = False) -> Any:
    """Register a data source under `name`: a loader `(path, options) -> {"x": ..., "y": ...}` (the
    arrays of a .npz, optionally "x_val"/"y_val", "x_test"/"y_test") read as `dataset: NAME:PATH`."""
    return DATA_SOURCES.register(name, factory, replace=replace)


__all__ = [
    "DATA_SOURCES", "EVALUATORS", "EXECUTORS", "SPACES", "STRATEGIES", "Registry", "import_object", "import_path",
    "register_data_source", "register_evaluator", "register_executor", "register_space", "register_strategy",
]
