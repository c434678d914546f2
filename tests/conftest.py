from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

# Two cores shared by test processes: one intra-op thread keeps runs predictable.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Tests send Ctrl-C (SIGINT) to searches they start. A shell that runs pytest in the background
# starts it with SIGINT ignored, and an ignored signal stays ignored across exec, so the searches
# would never see it; a handler (unlike SIG_IGN) is reset to the default in every child.
signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parents[1]


def shared_data() -> Path:
    return Path(os.environ.get("NASFORGE_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def digits():
    from nasforge.data import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="session")
def small_options():
    from nasforge.space import LayerSpaceOptions

    return LayerSpaceOptions(min_blocks=1, max_blocks=3, channels=(8, 16, 32), dense_units=(16, 32))
