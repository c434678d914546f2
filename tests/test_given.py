"""initial_genomes: known designs are evaluated first, then the strategy carries on from them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nasforge.space import LayerGraphSpace, LayerSpaceOptions
from nasforge.strategy import RegularizedEvolution
from nasforge.strategy.given import GivenFirst

SMALL = [{"kind": "conv", "channels": 8, "kernel": 3, "stride": 1}, {"kind": "act", "fn": "relu"}]
POOLED = [{"kind": "conv", "channels": 16, "kernel": 3, "stride": 1}, {"kind": "norm"}, {"kind": "act", "fn": "relu"},
          {"kind": "pool", "op": "max", "size": 2}]


def test_given_genomes_come_first_and_evolution_breeds_from_them(digits, tmp_path) -> None:
    from nasforge.api import build_study
    from nasforge.config import build_config

    path = tmp_path / "pooled.json"
    path.write_text(json.dumps(POOLED))
    config = build_config({"initial_genomes": [SMALL, str(path)], "strategy": {"name": "evolution", "population": 3,
                                                                              "sample_size": 3}},
                          dataset="digits", trials=6, epochs=1, max_blocks=2, out=str(tmp_path / "run"), progress=False)
    study = build_study(config)
    study.run()
    trials = study.trials
    assert [t.operator for t in trials[:2]] == ["given", "given"]
    assert [t.genome for t in trials[:2]] == [SMALL, POOLED]
    assert trials[2].operator == "random" and trials[2].genome not in (SMALL, POOLED)
    # After the population (two given, one random) is complete, children descend from its best.
    best_of_population = max(trials[:3], key=lambda t: t.reward).id
    assert trials[3].parents == [best_of_population]

    # A later search can start from this one's export: its genome.json is read as the genome it holds.
    from nasforge.export import export_trial

    export_trial(tmp_path / "run", tmp_path / "model")
    config = build_config({"initial_genomes": [str(tmp_path / "model" / "genome.json")]}, dataset="digits", trials=1,
                          epochs=1, out=str(tmp_path / "again"), progress=False)
    again = build_study(config).run()
    assert again.trials[0].operator == "given" and again.trials[0].genome == study.store.trial(study.final["trial"]).genome


def test_given_first_resumes_where_it_stopped() -> None:
    space = LayerGraphSpace((1, 8, 8), 10, LayerSpaceOptions(max_blocks=2))
    given = [space.from_json(SMALL), space.from_json(POOLED)]
    first = GivenFirst(RegularizedEvolution(space, seed=0, population=4), given)
    assert first.ask().genome == given[0]
    assert first.population_size == 4  # the study reads the inner strategy's attributes through it
    state = json.loads(json.dumps(first.state_dict()))
    resumed = GivenFirst(RegularizedEvolution(space, seed=0, population=4), given)
    resumed.load_state_dict(state)
    assert resumed.ask().genome == given[1] == first.ask().genome
    third = resumed.ask()
    assert third.operator == "random" and third.genome == first.ask().genome  # the inner RNG resumed too
    np.testing.assert_equal(resumed.inner.rng.random(), first.inner.rng.random())


def test_bad_initial_genomes_name_the_entry(tmp_path) -> None:
    from nasforge.api import build_study
    from nasforge.config import build_config
    from nasforge.errors import ConfigError

    def build(genomes: list) -> None:
        build_study(build_config({"initial_genomes": genomes}, dataset="digits", trials=1, out=str(tmp_path / "run"),
                                 progress=False))

    with pytest.raises(ConfigError, match=r"initial_genomes\[0\]: no genome file"):
        build([str(tmp_path / "missing.json")])
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"initial_genomes\[1\]: .*not a JSON genome"):
        build([SMALL, str(tmp_path / "bad.json")])
    with pytest.raises(ConfigError, match=r"initial_genomes\[0\]: not a genome of the 'layers' space"):
        build([[{"kind": "teleport"}]])
    # A genome that breaks the search's own constraints would only be a failed trial: refused up front.
    with pytest.raises(ConfigError, match=r"initial_genomes\[1\]: params=\d+ breaks params<=200 \(the constraints params<=200\)"):
        build_study(build_config({"initial_genomes": [SMALL, POOLED], "constraints": ["params<=200"]}, dataset="digits",
                                 trials=1, out=str(tmp_path / "run"), progress=False))
    assert not (tmp_path / "run").exists()


def test_the_fsdd_example_starts_from_a_feasible_hand_cnn() -> None:
    """examples/fsdd.yaml gives this genome first: it must be the benchmark's hand deep CNN and pass the
    example's own constraints, or its first trial would fail unbuilt."""
    from pathlib import Path

    import torch

    from nasforge.config import read_yaml
    from nasforge.evaluate.constraints import parse_constraints, violation
    from nasforge.evaluate.cost import CostOptions, genome_measures, measure_costs

    root = Path(__file__).resolve().parents[1]
    config = read_yaml(root / "examples" / "fsdd.yaml")
    assert config["initial_genomes"] == ["examples/genomes/fsdd_deep_cnn.json"]
    space = LayerGraphSpace((1, 40, 51), 10)
    genome = space.from_json(json.loads((root / config["initial_genomes"][0]).read_text()))
    assert space.describe(genome) == ("conv3x16 bn relu maxpool2 conv3x32 bn relu maxpool2 conv3x64 bn relu maxpool2 "
                                      "conv3x64 bn relu maxpool2 conv3x128 bn relu")
    measures = {**measure_costs(space.build(genome), torch.zeros(1, 1, 40, 51), CostOptions(), {"flops"}),
                **genome_measures(space, genome, {"receptive_field"})}
    assert violation(parse_constraints(config["constraints"]), measures) is None
