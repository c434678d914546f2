"""How a model function crosses processes: by reference (its module and name), never by value.

Pool and Ray workers, a resumed run and a later `load` all need the user's model function again. They
get it the way pickle sends any module-level function: its `module:qualname`, imported where it is
needed. A copy of its code (cloudpickle) would also carry lambdas and closures, but it would silently
freeze whatever the closure captured, could not be written into the run's record for a resume or a
load in a new process, and is not a dependency; so a lambda or a closure is refused before a run with
worker processes starts (`portability`), with the fix in the message. A script's own functions
(`__main__`) are fine for the pool: multiprocessing imports the script again in each worker (which is
why the script's search must sit under `if __name__ == '__main__':`), and Ray sends them by value;
another process that needs one is told to pass the function itself (`import_function`).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import import_object
from .choices import Choices


def function_label(function: Any) -> str:
    name = getattr(function, "__name__", None) or type(function).__name__
    return f"{name} ({function_path(function)})"


def function_path(function: Any) -> str:
    """`module:qualname` of a function, whether or not it can be imported back."""
    module = getattr(function, "__module__", None) or "?"
    qualname = getattr(function, "__qualname__", None) or getattr(function, "__name__", None) or type(function).__qualname__
    return f"{module}:{qualname}"


def portability(function: Any) -> str | None:
    """Why `function` cannot be rebuilt in a worker process from its module and name, or None."""
    qualname = getattr(function, "__qualname__", "") or ""
    module = getattr(function, "__module__", None)
    if "<lambda>" in qualname:
        return "it is a lambda"
    if "<locals>" in qualname:
        return "it is defined inside another function (a closure)"
    if not module:
        return "it has no module"
    if module == "__main__":
        main = sys.modules.get("__main__")
        if not getattr(main, "__file__", None):
            return "it was defined in an interactive session (a notebook or the REPL), which workers cannot import"
        found = getattr(main, qualname.split(".")[0], None)
    else:
        try:
            found = import_object(f"{module}:{qualname}")
        except (ImportError, AttributeError):
            return f"{module}:{qualname} cannot be imported"
    if qualname.count(".") == 0 and found is not function:
        return f"{module}:{qualname} names another object (is the function decorated or redefined?)"
    return None


def import_function(path: str, file: str | None = None) -> Callable[[Choices], nn.Module]:
    """The model function a run recorded as `module:qualname`; a ConfigError that says how to pass it
    where it cannot be imported here."""
    module, _, qualname = path.partition(":")
    how = ("pass the function itself: nasforge.load(EXPORT, space=make_model), nasforge.export_trial(RUN, OUT, "
           "space=make_model), nasforge.search(out=RUN, resume=True, space=make_model); on the command line, "
           "nasforge export RUN --space path/to/script.py:make_model, nasforge search --resume --out RUN --space "
           "path/to/script.py:make_model")
    if module == "__main__":
        main = sys.modules.get("__main__")
        running = getattr(main, "__file__", None)
        if file and running and os.path.abspath(running) == os.path.abspath(file):  # that script is this process
            found: Any = main
            for part in qualname.split("."):
                found = getattr(found, part, None)
            if callable(found):
                return found
        where = f"the script {file}" if file else "an interactive session"
        raise ConfigError(f"the run's model function {path} was defined in {where}, which cannot be imported from here; "
                          f"{how}, or move it into an importable module")
    try:
        return import_object(path)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import the run's model function {path} ({type(exc).__name__}: {exc}); {how}, or make "
                          "its module importable (installed, or on PYTHONPATH)") from None


def user_frame(exc: BaseException) -> str:
    """'file:line' of the deepest frame of the traceback outside nasforge and torch (the user's code)."""
    skip = (os.path.dirname(os.path.dirname(__file__)), os.path.dirname(torch.__file__))
    where = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        if not frame.filename.startswith(skip):
            where = f"{frame.filename}:{frame.lineno}"
    return where


__all__ = ["function_label", "function_path", "import_function", "portability", "user_frame"]
