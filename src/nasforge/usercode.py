"""What the Python API takes beside a config: the user's data, training function and callables.

A config file holds names and numbers; `nasforge.search(data=..., evaluate=..., loss=callable, ...)`
also takes Python objects. They travel apart from the config as `UserObjects`, and the config records
that they were given (dataset.name "python:...", evaluator "functional", loss / optimizer / reward
"custom"), so a resumed study asks for them again and checks that the data is the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .data.objects import describe
from .errors import ConfigError, DataError
from .store import Store

# A config's dataset.name for data given as a Python object (data/objects.py: describe()).
PYTHON_DATA = "python:"


@dataclass(frozen=True)
class UserObjects:
    """What a search takes in Python that a config file cannot hold; the config records that they
    were given (dataset.name "python:...", loss / optimizer / reward "custom"), and a resumed study
    needs them given again."""

    data: Any = None  # arrays, a dict of splits, a torch Dataset or DataLoader (data/objects.py)
    evaluate: Callable[..., Any] | None = None  # evaluate(model, ctx) (evaluate/functional.py)
    loss: Callable[..., Any] | None = None  # loss(outputs, targets) -> scalar tensor
    optimizer: Callable[..., Any] | None = None  # factory(params, lr=, weight_decay=) -> Optimizer
    metric: Callable[..., Any] | None = None  # metric(y_true, y_score) -> float, the reward


def user_objects(data: Any, evaluate: Callable[..., Any] | None, options: dict[str, Any], resume: bool
                 ) -> tuple[UserObjects, dict[str, Any]]:
    """The Python objects among search()'s arguments, and the flag options with what the config records of them."""
    options = dict(options)
    found: dict[str, Any] = {}
    if data is not None:
        if options.get("dataset") is not None:
            raise ConfigError("data and dataset name the same thing; give one")
        if isinstance(data, (str, Path)):
            options["dataset"] = str(data)
        else:
            found["data"] = data
            if not resume:
                options["dataset"] = describe(data)
    for name, flag, value in (("loss", "loss", "custom"), ("optimizer", "optimizer", "custom"), ("metric", "reward", "custom")):
        if callable(options.get(flag)):
            found[name] = options[flag]
            options[flag] = None if resume else value
    if evaluate is not None:
        if not callable(evaluate):
            raise ConfigError(f"evaluate: expected a function (model, ctx) -> score, got {type(evaluate).__name__}")
        found["evaluate"] = evaluate
        if not resume:
            options["evaluator"] = "functional"
    return UserObjects(**found), options



def check_same_data(run_dir: Path, data: Any) -> None:
    """A resumed study given its data object again must get the data it started with."""
    store = Store.in_dir(run_dir)
    try:
        stored = store.get("dataset") or {}
    finally:
        store.close()
    now = data.summary()
    changed = [k for k in ("task", "input_shape", "num_classes", "sizes") if k in stored and stored[k] != now.get(k)]
    if changed:
        raise DataError(f"data: not the data this study started with ({', '.join(f'{k} {stored[k]} -> {now.get(k)}' for k in changed)})")
