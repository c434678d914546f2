"""Registries are the only source of names: user and plug-in strategies are found by name, by
import path and as objects; the CLI flags are derived from the schema."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import nasforge
from nasforge.config import build_config, flags, parse_config
from nasforge.errors import ConfigError
from nasforge.registry import STRATEGIES, Registry
from nasforge.strategy import Candidate, Observation, Strategy
from nasforge.strategy.factory import create_strategy

SMALL = dict(dataset="digits", trials=2, epochs=1, max_blocks=2, channels="8", dense_units="16", progress=False)


class CountingRandom(Strategy):
    """Random search that counts what it was told (a user's strategy for these tests)."""

    name = "counting"

    def __init__(self, space, seed: int = 0, label: str = "x"):
        super().__init__(space, seed)
        self.label, self.told = label, 0

    def ask(self) -> Candidate:
        return Candidate(self.space.sample(self.rng), operator=f"counting-{self.label}")

    def tell(self, trial: int, candidate: Candidate, observation: Observation) -> None:
        self.told += 1


def test_registry_names_lookups_and_errors() -> None:
    reg: Registry = Registry("widget", "nasforge.test-widgets", {"dict": "builtins:dict"})
    assert reg.names() == ["dict"] and reg["dict"] is dict and "dict" in reg
    reg.register("mine", list)
    assert reg.names() == ["dict", "mine"] and reg.get_or_error("mine") is list
    reg.register("mine", list)  # the same object again is fine
    with pytest.raises(ValueError, match="already registered"):
        reg.register("mine", tuple)
    with pytest.raises(ValueError, match="name"):
        reg.register("no spaces", tuple)
    with pytest.raises(ConfigError, match=r"field: unknown widget 'nope'; known: dict, mine"):
        reg.get_or_error("nope", "field")
    assert reg.get_or_error("collections:OrderedDict").__name__ == "OrderedDict"  # an import path
    with pytest.raises(ConfigError, match="cannot be imported"):
        reg.get_or_error("collections:NoSuchThing")


def test_a_registered_strategy_runs_by_name_with_its_options(tmp_path) -> None:
    nasforge.register_strategy("counting", CountingRandom)
    try:
        config = parse_config({"strategy": {"name": "counting", "label": "y"}})
        assert config.strategy.name == "counting" and config.strategy.label == "y"  # options pass through
        study = nasforge.search({"strategy": {"name": "counting", "label": "y"}}, out=str(tmp_path / "r"), **SMALL)
        assert [t.operator for t in study.trials] == ["counting-y", "counting-y"]
        assert study.strategy.told == 2
    finally:
        STRATEGIES.unregister("counting")


def test_strategy_objects_and_import_paths(tmp_path) -> None:
    study = nasforge.search(strategy=CountingRandom, out=str(tmp_path / "cls"), **SMALL)
    assert isinstance(study.strategy, CountingRandom) and study.store.get("config")["strategy"]["name"] == \
        "test_registry:CountingRandom"
    study = nasforge.search(strategy="test_registry:CountingRandom", out=str(tmp_path / "path"), **SMALL)
    assert isinstance(study.strategy, CountingRandom)
    with pytest.raises(ConfigError, match="another space"):
        from nasforge.space import CellSpace

        nasforge.search(strategy=CountingRandom(CellSpace()), out=str(tmp_path / "inst"), **SMALL)


def test_unknown_strategy_and_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"strategy.name: unknown strategy 'annealing'; known: .*evolution"):
        build_config(strategy="annealing")
    with pytest.raises(ConfigError, match=r"strategy.sample_size"):
        parse_config({"strategy": {"name": "evolution", "sample_size": "many"}})
    with pytest.raises(ConfigError, match=r"strategy 'counting'.*unexpected keyword"):
        from nasforge.space import CellSpace

        STRATEGIES.register("counting", CountingRandom)
        try:
            create_strategy({"name": "counting", "colour": "red"}, CellSpace(), 0)
        finally:
            STRATEGIES.unregister("counting")


@pytest.mark.slow
def test_a_plugin_strategy_is_found_through_its_entry_point(tmp_path, monkeypatch) -> None:
    (tmp_path / "toyplug.py").write_text(textwrap.dedent('''
        from nasforge.strategy import Candidate, Strategy

        class FirstOnly(Strategy):
            name = "toy"
            def ask(self):
                return Candidate(self.space.sample(self.rng), operator="toy")
            def tell(self, trial, candidate, observation):
                pass
    '''))
    info = tmp_path / "toyplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toyplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[nasforge.strategies]\ntoy = toyplug:FirstOnly\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    STRATEGIES.reload_plugins()
    try:
        assert "toy" in STRATEGIES.names()
        assert "toy" in flags()["strategy"].help  # the CLI lists it
        study = nasforge.search(strategy="toy", out=str(tmp_path / "run"), **SMALL)
        assert {t.operator for t in study.trials} == {"toy"}
        # and from the command line, in a new process that finds the plug-in the same way
        env = {"PYTHONPATH": f"{tmp_path}:{':'.join(sys.path)}", "OMP_NUM_THREADS": "1"}
        out = subprocess.run([sys.executable, "-m", "nasforge.cli", "search", "--strategy", "toy", "--dataset", "digits",
                              "--trials", "1", "--epochs", "1", "--max-blocks", "2", "--progress", "false",
                              "--out", str(tmp_path / "cli")], capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stderr
    finally:
        STRATEGIES.unregister("toy")
        STRATEGIES.reload_plugins()


def test_flags_are_derived_from_the_schema_without_collisions() -> None:
    table = flags()
    assert table["epochs"].path == "training.epochs" and table["strategy"].path == "strategy.name"
    assert table["population"].path == "strategy.population" and "evolution" in table["population"].help
    assert table["latency_batch"].path == "costs.batch_size" and table["prescreen_pool"].path == "prescreen.pool"
    assert table["constraint"].kind == "repeat" and table["channels"].kind == "list"
    assert all(f.help for f in table.values())
    # every scalar field of the main sections has a flag
    assert {"val_fraction", "final_data", "early_stop_min_trials", "scalarize_alpha", "policy_lr"} <= set(table)
    config = build_config(channels="8,16", strategy="reinforce", policy_lr=0.01)
    assert config.space.channels == (8, 16) and config.strategy.lr == 0.01
