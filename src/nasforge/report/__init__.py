"""Reporting: the progress line while searching, and the report of a study afterwards (or live).

    snapshot.py     read-only read of a run's store (safe while a search writes it)
    lineage.py      the ancestry of a trial: parents and operators
    architecture.py a diagram of a network from its Plan
    plots.py        every plot as a matplotlib Figure, and PNG rendering
    html.py         the self-contained HTML page
    build.py        the report on disk (HTML + PNGs)
    serve.py        the live view over HTTP

The names below load lazily: the search loop imports `report.progress`, and must not pay for
matplotlib on every run.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "read_run": ".snapshot", "RunSnapshot": ".snapshot",
    "lineage": ".lineage", "Lineage": ".lineage",
    "render_plots": ".plots", "PLOTS": ".plots",
    "render_html": ".html",
    "write_report": ".build", "render": ".build",
    "make_server": ".serve", "serve": ".serve",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name], __name__), name)
