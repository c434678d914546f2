from __future__ import annotations

import os
from pathlib import Path

import pytest

# Two cores shared by test processes: one intra-op thread keeps runs predictable.
os.environ.setdefault("OMP_NUM_THREADS", "1")

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
