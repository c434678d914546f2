"""Bad configs end in an error naming the bad field: never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nasforge.config import SearchConfig, build_config, parse_config, read_yaml
from nasforge.errors import ConfigError

VALID = {
    "dataset": {"name": "digits", "val_fraction": 0.2},
    "strategy": {"name": "genetic", "population": 8, "selection": "rank", "elitism": 1},
    "training": {"epochs": 2, "batch_size": 64, "lr": 0.01, "cosine": False},
    "budget": {"trials": 5, "seconds": 60},
    "space": {"max_blocks": 3, "channels": [8, 16]},
    "reward": "f1",
    "seed": 1,
    "out": "runs/x",
}

# Values that are wrong for the field they are put into (each field's type is known).
BAD_VALUES = {
    "dataset.name": [3, None, "", [1]],
    "dataset.val_fraction": [0, 1, -0.5, "half", 1.5],
    "dataset.layout": ["nwhc", 4],
    "strategy.name": ["annealing", 7, None],
    "strategy.population": [1, -3, "many", 2.5],
    "strategy.selection": ["best", 0],
    "strategy.elitism": [8, 100, -1],
    "strategy.crossover_rate": [1.5, -0.1, "often"],
    "training.epochs": [0, -1, "five", 2.7, None],
    "training.batch_size": [0, "big"],
    "training.lr": [0, -1.0, "fast"],
    "training.cosine": ["sometimes", 3],
    "training.trial_timeout": [0, -5, "long"],
    "training.label_smoothing": [-0.1, 1.0, "some"],
    "dataset.band_norm": ["cmvn", 1],
    "budget.trials": [0, -2, "lots"],
    "budget.seconds": [0, "an hour"],
    "space.max_blocks": [0, "deep", 1000],
    "space.channels": [[], [0], "wide", [8, "x"]],
    "space.activations": [["swish-ish"], "relu"],
    "reward": ["happiness", 1],
    "seed": [-1, "lucky", 1.5],
    "out": ["", 5],
}


def _with(path: str, value) -> dict:
    import copy

    data = copy.deepcopy(VALID)
    *parents, leaf = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    node[leaf] = value
    return data


def test_valid_config_parses() -> None:
    config = parse_config(VALID)
    assert isinstance(config, SearchConfig) and config.strategy.selection == "rank"


def test_shorthands_and_defaults() -> None:
    config = parse_config({"dataset": "mnist1d", "strategy": "random"})
    assert config.dataset.name == "mnist1d" and config.strategy.name == "random" and config.budget.trials == 40


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(sorted(BAD_VALUES)), data=st.data())
def test_each_malformed_field_is_named(field: str, data) -> None:
    value = data.draw(st.sampled_from(BAD_VALUES[field]))
    with pytest.raises(ConfigError) as info:
        parse_config(_with(field, value))
    assert field.split(".")[-1] in str(info.value) or field.split(".")[0] in str(info.value)


junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
keys = st.sampled_from(["dataset", "strategy", "training", "budget", "space", "reward", "seed", "out", "epochs", "bogus"])


@pytest.mark.slow
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=st.one_of(junk, st.dictionaries(keys, junk, max_size=5)))
def test_arbitrary_junk_never_escapes_as_a_traceback(config) -> None:
    try:
        parse_config(config)
    except ConfigError as exc:
        assert str(exc).startswith("invalid configuration")


def test_unknown_field_is_named() -> None:
    with pytest.raises(ConfigError, match=r"training\.epoch: unknown field"):
        parse_config({"training": {"epoch": 3}})
    with pytest.raises(ConfigError, match="population"):
        parse_config({"strategy": {"name": "evolution", "population": 2, "sample_size": 3}})
    with pytest.raises(ConfigError, match="budget"):
        parse_config({"budget": {"trials": None}})


def test_flags_override_file_and_unknown_option_is_named() -> None:
    config = build_config(VALID, trials=9, strategy="evolution", population=None)
    assert config.budget.trials == 9 and config.strategy.name == "evolution"
    with pytest.raises(ConfigError, match="tirals"):
        build_config({}, tirals=3)


def test_yaml_is_read_safely(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("dataset: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_yaml(path)
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        read_yaml(path)


@pytest.mark.parametrize("text, field", [
    ("training:\n  epochs: many\n", "training.epochs"),
    ("strategy: {name: evolution, pop: 3}\n", "strategy.pop"),
    ("colour: blue\n", "colour"),
])
def test_cli_bad_config_exits_2_naming_the_field(tmp_path, text: str, field: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    out = subprocess.run([sys.executable, "-m", "nasforge.cli", "search", str(path), "--out", str(tmp_path / "run")],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert field in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_config_is_valid(path: Path) -> None:
    config = build_config(read_yaml(path))
    assert config.out.startswith("runs/")  # examples write under runs/, never into the tree elsewhere


def test_the_configs_measure_names_are_the_cost_modules() -> None:
    # config.py names them without importing torch; they must not drift from evaluate/cost.py.
    from nasforge.config import CONSTRAINT_MEASURES, COST_MEASURES
    from nasforge.evaluate.cost import GENOME_MEASURES, MEASURES

    assert COST_MEASURES == MEASURES and (*MEASURES, *GENOME_MEASURES) == CONSTRAINT_MEASURES
