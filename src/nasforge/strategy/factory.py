"""The one way a strategy is made from a name and options (configs, the CLI, `search()`, the
benchmark harness): the registry gives the class or factory, its `Options` validate the options."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError
from ..registry import STRATEGIES
from ..space.base import SearchSpace
from .base import Strategy, StrategyOptions


def options_model(name: str) -> type[StrategyOptions]:
    """The options a strategy declares (its `Options`), or the permissive base for factories."""
    target = STRATEGIES.get_or_error(name, "strategy.name")
    if isinstance(target, type) and issubclass(target, Strategy):
        return target.Options
    if callable(target):
        return StrategyOptions
    raise ConfigError(f"strategy.name: {name!r} names {type(target).__name__}, not a Strategy class or factory")


def parse_options(value: str | Mapping[str, Any] | StrategyOptions) -> StrategyOptions:
    """Validated options from a name, a mapping with a name, or options already made. Raises
    pydantic's ValidationError for bad option values and ConfigError for an unknown name."""
    if isinstance(value, StrategyOptions):
        return value
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, Mapping) or not isinstance(value.get("name"), str):
        raise ConfigError("strategy: give a strategy name, e.g. 'evolution' or {name: evolution, population: 20}")
    return options_model(value["name"]).model_validate(dict(value))


def create_strategy(options: str | Mapping[str, Any] | StrategyOptions, space: SearchSpace, seed: int,
                    objectives: Sequence[str] = ()) -> Strategy:
    """The strategy `options` describe, searching `space` from `seed`."""
    options = parse_options(options)
    target = STRATEGIES.get_or_error(options.name, "strategy.name")
    try:
        if isinstance(target, type) and issubclass(target, Strategy):
            strategy = target.from_options(space, seed, options, objectives)
        else:
            strategy = target(space, seed, **options.model_dump(exclude={"name"}, exclude_none=True))
    except (TypeError, ValueError) as exc:  # options the constructor does not take, or values it refuses
        raise ConfigError(f"strategy {options.name!r}: {exc}") from None
    if not isinstance(strategy, Strategy):
        raise ConfigError(f"strategy {options.name!r}: the factory returned {type(strategy).__name__}, not a Strategy")
    return strategy
