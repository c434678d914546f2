"""Where and when a benchmark ran, kept in its JSON so that a results table built from it can say so
(docs/hooks/results.py): the UTC date, the cores, and the load averages at its start and end."""

from __future__ import annotations

import os
import time
from typing import Any


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine_record() -> dict[str, Any]:
    """The record at a benchmark's start; `finish` adds the load at its end."""
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": os.cpu_count(), "load_start": _load()}


def finish(record: dict[str, Any]) -> dict[str, Any]:
    record["load_end"] = _load()
    return record
