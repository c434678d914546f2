"""Multi-objective search: Pareto arithmetic, cost measures, constraints, scalarized rewards, NSGA-II."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from torch import nn

import nasforge
from nasforge.cli import main
from nasforge.config import build_config
from nasforge.errors import ConfigError
from nasforge.evaluate.constraints import Constraint, MnasNetReward, NoFeasibleCandidate, WeightedSum, parse_constraints
from nasforge.evaluate.cost import CostModel, CostOptions, count_flops, measure_costs
from nasforge.evaluate.tabular import TabularBenchmark, TabularEvaluator, TabularSpec
from nasforge.evaluate.trainer import TrainingOptions
from nasforge.evaluate.training import TrainingEvaluator
from nasforge.objectives import crowding_distance, dominates, hypervolume, non_dominated_sort, pareto_mask
from nasforge.space import CellSpace, LayerGraphSpace
from nasforge.strategy.base import Observation
from nasforge.strategy.feasible import FeasibleSpace
from nasforge.strategy.nsga2 import NSGA2

torch.set_num_threads(1)


# -- Pareto arithmetic -------------------------------------------------------------------------------

def test_dominance_and_non_dominated_sort_on_hand_made_points() -> None:
    assert dominates([1, 2], [2, 2]) and dominates([1, 1], [2, 2])
    assert not dominates([1, 2], [1, 2]) and not dominates([1, 3], [2, 2]) and not dominates([2, 2], [1, 3])
    points = np.array([[1, 5], [2, 3], [3, 1], [2, 4], [4, 4], [5, 5]], dtype=float)
    assert non_dominated_sort(points) == [[0, 1, 2], [3], [4], [5]]
    assert pareto_mask(points).tolist() == [True, True, True, False, False, False]
    # Equal points are all non-dominated; a copy of a dominated point stays dominated.
    twins = np.array([[1, 1], [1, 1], [2, 2], [2, 2]], dtype=float)
    assert non_dominated_sort(twins) == [[0, 1], [2, 3]]


def test_crowding_distance_on_hand_made_points() -> None:
    front = np.array([[0, 10], [1, 4], [4, 1], [10, 0]], dtype=float)
    d = crowding_distance(front)
    assert np.isinf(d[0]) and np.isinf(d[3])
    # (4 - 0) / 10 + (10 - 1) / 10 for the second point; the third is its mirror image.
    assert d[1] == pytest.approx(1.3) and d[2] == pytest.approx(1.3)
    assert np.isinf(crowding_distance(front[:2])).all()


def test_hypervolume_on_hand_made_points() -> None:
    assert hypervolume(np.array([[1, 3], [2, 2], [3, 1]]), [4, 4]) == pytest.approx(6.0)
    # A dominated point and a point outside the reference box add nothing.
    assert hypervolume(np.array([[1, 3], [2, 2], [3, 1], [3, 3], [5, 0]]), [4, 4]) == pytest.approx(6.0)
    assert hypervolume(np.array([[0, 0, 0]]), [1, 2, 3]) == pytest.approx(6.0)
    # Two boxes of 4 and 2 overlapping in a unit cube.
    assert hypervolume(np.array([[0, 0, 1], [1, 1, 0]]), [2, 2, 2]) == pytest.approx(5.0)
    assert hypervolume(np.zeros((0, 2)), [1, 1]) == 0.0


def _grid_volume(points: np.ndarray, ref: np.ndarray) -> float:
    """The dominated volume cell by cell on the grid of all coordinates: slow, obviously right."""
    axes = [np.unique(np.append(points[:, k], ref[k])) for k in range(len(ref))]
    volume = 0.0
    for cell in itertools.product(*[range(len(a) - 1) for a in axes]):
        low = np.array([a[i] for a, i in zip(axes, cell)])
        if np.any(np.all(points <= low, axis=1)):
            volume += float(np.prod([a[i + 1] - a[i] for a, i in zip(axes, cell)]))
    return volume


@pytest.mark.parametrize("dims", [2, 3])
def test_hypervolume_matches_an_independent_grid_computation(dims: int) -> None:
    rng = np.random.default_rng(dims)
    for _ in range(15):
        points = rng.integers(0, 8, size=(int(rng.integers(1, 9)), dims)).astype(float)
        ref = np.full(dims, 8.0)
        assert hypervolume(points, ref) == pytest.approx(_grid_volume(points, ref))


# -- cost measures -----------------------------------------------------------------------------------

def test_flops_of_a_conv_layer_equal_the_closed_form() -> None:
    conv = nn.Conv2d(3, 8, kernel_size=3, padding=1)
    # A multiply-add is 2 FLOPs: 2 * Cout * Hout * Wout * Cin * kh * kw per sample (bias not counted).
    assert count_flops(conv, torch.randn(1, 3, 16, 16)) == 2 * 8 * 16 * 16 * 3 * 3 * 3
    strided = nn.Conv1d(4, 6, kernel_size=5, stride=2)
    l_out = (40 - 5) // 2 + 1
    assert count_flops(strided, torch.randn(1, 4, 40)) == 2 * 6 * l_out * 4 * 5
    assert count_flops(nn.Linear(10, 7), torch.randn(1, 10)) == 2 * 10 * 7


def test_cost_measures_of_a_model() -> None:
    model = nn.Sequential(nn.Conv1d(1, 4, 3), nn.BatchNorm1d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 38, 10))
    model.train()
    costs = measure_costs(model, torch.randn(5, 1, 40), CostOptions(batch_size=8, warmup=1, repeats=3))
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    assert costs["params"] == params and costs["size_bytes"] == 4 * params + buffers
    # The convolution and the linear layer; batch norm and ReLU are not counted by torch's counter.
    assert costs["flops"] == 2 * 4 * 38 * 1 * 3 + 2 * (4 * 38) * 10
    assert costs["latency_ms"] > 0
    assert model.training  # measuring restored the mode


# -- constraints and scalarized rewards ----------------------------------------------------------------

def test_constraints_parse_safely_and_name_what_is_wrong() -> None:
    assert Constraint.parse("params<=20k") == Constraint("params", "<=", 20000.0)
    assert Constraint.parse(" latency_ms < 5.5 ").holds(5.0) and not Constraint.parse("latency_ms<5").holds(5.0)
    assert parse_constraints(["flops>=1e3", "size_bytes<2M"])[1].limit == 2e6
    with pytest.raises(ConfigError, match="expected MEASURE<=NUMBER"):
        Constraint.parse("params <= __import__('os').system('true')")
    with pytest.raises(ConfigError, match="unknown measure 'parms'"):
        Constraint.parse("parms<=10", known=("params", "flops"))
    with pytest.raises(ConfigError, match="parms"):
        build_config(dataset="digits", constraint=["parms<=20000"])
    with pytest.raises(ConfigError, match="needs two or more objectives"):
        build_config(dataset="digits", strategy="nsga2", objectives="accuracy")
    config = build_config(dataset="digits", strategy="nsga2", objectives="accuracy,params", constraint=["params<=2e4", "latency_ms<=5"])
    assert config.constraints == ("params<=2e4", "latency_ms<=5") and config.objectives == ("accuracy", "params")


def test_mnasnet_and_weighted_rewards() -> None:
    soft, hard = MnasNetReward.of("latency_ms", 5.0, "soft"), MnasNetReward.of("latency_ms", 5.0, "hard")
    assert soft(0.8, {"latency_ms": 10.0}) == pytest.approx(0.8 * 2 ** -0.07)
    assert soft(0.8, {"latency_ms": 2.5}) == pytest.approx(0.8 * 0.5 ** -0.07)
    assert hard(0.8, {"latency_ms": 10.0}) == pytest.approx(0.4)
    assert hard(0.8, {"latency_ms": 5.0}) == pytest.approx(0.8)
    assert WeightedSum.of({"reward": 1.0, "params": -1e-4})(0.9, {"params": 1000}) == pytest.approx(0.8)


@pytest.fixture(scope="module")
def layer_space(digits, small_options):
    return LayerGraphSpace(digits.input_shape, digits.num_classes, small_options)


def test_feasible_space_only_returns_feasible_candidates_and_says_when_there_are_none(digits, layer_space) -> None:
    costs = CostModel(layer_space, digits.x_train[:1])
    limit = 2000
    space = FeasibleSpace(layer_space, parse_constraints([f"params<={limit}"]), costs)
    rng = np.random.default_rng(0)
    genomes = [space.sample(rng) for _ in range(10)]
    genomes += [space.mutate(g, rng)[0] for g in genomes] + [space.crossover(genomes[0], genomes[1], rng)]
    assert all(costs(g, ["params"])["params"] <= limit for g in genomes)
    impossible = FeasibleSpace(layer_space, parse_constraints(["params<=1", "params>=1"]), costs, tries=50)
    with pytest.raises(NoFeasibleCandidate, match=r"params<=1.*in 50 random samples"):
        impossible.sample(rng)


def test_the_evaluator_never_trains_an_infeasible_candidate(digits, layer_space, monkeypatch) -> None:
    trained = []
    import nasforge.evaluate.training as evaluator_module

    real_train = evaluator_module.train_batches
    monkeypatch.setattr(evaluator_module, "train_batches", lambda model, *a, **k: trained.append(model) or real_train(model, *a, **k))
    evaluator = TrainingEvaluator(layer_space, digits, TrainingOptions(epochs=1), constraints=parse_constraints(["params<=2000"]))
    rng = np.random.default_rng(1)
    results = []
    for _ in range(40):
        genome = layer_space.sample(rng)
        results.append(evaluator.evaluate(genome, seed=0, epochs=1))
        if len(trained) >= 2 and any(r.error and "infeasible" in r.error for r in results):
            break
    infeasible = [r for r in results if r.error and "infeasible" in r.error]
    assert infeasible and all(r.status == "failed" and r.metrics["params"] > 2000 for r in infeasible)
    assert trained and all(sum(p.numel() for p in m.parameters()) <= 2000 for m in trained)
    assert len(trained) == sum(r.status == "complete" for r in results)


def test_a_tabular_constraint_costs_no_query(tmp_path) -> None:
    space = CellSpace()
    rng = np.random.default_rng(0)
    archs = sorted({space.to_json(space.sample(rng)) for _ in range(6)})
    table = tmp_path / "t.csv"
    table.write_text("arch_str,acc,test,lat\n" + "".join(f"{a},{50 + i},{60 + i},{i}\n" for i, a in enumerate(archs)))
    bench = TabularBenchmark(table, TabularSpec(signal="acc", report="test", objectives=("lat",)))
    evaluator = TabularEvaluator(bench, space, constraints=parse_constraints(["lat<=2"]),
                                 scalarization=MnasNetReward.of("lat", 2.0, "hard"))
    late = evaluator.evaluate(space.from_json(archs[4]))
    assert late.status == "failed" and "infeasible" in late.error and evaluator.queries == 0
    ok = evaluator.evaluate(space.from_json(archs[1]))
    assert ok.status == "complete" and ok.reward == pytest.approx(51.0) and evaluator.queries == 1


# -- NSGA-II -----------------------------------------------------------------------------------------

def _toy_metrics(space: CellSpace, genome) -> dict[str, float]:
    """Two conflicting objectives on cells: 3x3 convolutions (more is better) against 'cost'."""
    ops = list(genome.ops)
    convs = ops.count("nor_conv_3x3")
    cost = 3 * convs + 1.5 * ops.count("nor_conv_1x1") + ops.count("avg_pool_3x3")
    return {"accuracy": convs + 0.5 * ops.count("nor_conv_1x1") + 0.1 * ops.count("skip_connect"), "params": cost}


def _run(strategy, space, n: int, start: int = 0) -> list[tuple]:
    out = []
    for trial in range(start + 1, start + n + 1):
        cand = strategy.ask()
        metrics = _toy_metrics(space, cand.genome)
        strategy.tell(trial, cand, Observation(metrics["accuracy"], metrics))
        out.append((space.to_json(cand.genome), metrics["accuracy"], metrics["params"]))
    return out


def test_nsga2_state_dict_round_trip_continues_identically() -> None:
    space = CellSpace()
    a = NSGA2(space, seed=3, objectives=("accuracy", "params"), population=6)
    _run(a, space, 15)  # mid-generation
    state = json.loads(json.dumps(a.state_dict()))
    b = NSGA2(space, seed=99, objectives=("accuracy", "params"), population=6)
    b.load_state_dict(state)
    assert _run(a, space, 20, start=15) == _run(b, space, 20, start=15)
    with pytest.raises(ValueError, match="optimised"):
        NSGA2(space, objectives=("accuracy", "flops")).load_state_dict(state)


def test_nsga2_front_beats_random_search_on_a_toy_problem() -> None:
    from nasforge.strategy.random import RandomSearch

    space = CellSpace()
    ref = np.array([0.0, 20.0])

    def volume(rows: list[tuple]) -> float:
        pts = np.array([[-acc, cost] for _, acc, cost in rows])
        return hypervolume(pts, [-ref[0], ref[1]])

    ours = [volume(_run(NSGA2(space, seed=s, population=10), space, 80)) for s in range(8)]
    rand = [volume(_run(RandomSearch(space, seed=s), space, 80)) for s in range(8)]
    assert np.mean(ours) > np.mean(rand)


def test_failed_or_incomplete_candidates_take_no_part() -> None:
    space = CellSpace()
    s = NSGA2(space, seed=0, population=2)
    c1, c2 = s.ask(), s.ask()
    assert s.ask() is None  # the generation is out
    s.tell(1, c1, Observation(None))
    s.tell(2, c2, Observation(0.5, {"accuracy": 0.5}))  # no params
    assert s.population == [] and s.generation_index == 1
    assert s.ask() is not None  # an empty population samples again


# -- end to end: a constrained Pareto search that trains ---------------------------------------------------

def test_constrained_pareto_search_on_digits_returns_only_feasible_models(tmp_path, capsys) -> None:
    out = tmp_path / "mo"
    study = nasforge.search(dataset="digits", strategy="nsga2", population=4, objectives="accuracy,params",
                            constraint=["params<=3000"], trials=10, epochs=1, max_blocks=3, seed=0, out=str(out), progress=False)
    complete = [t for t in study.trials if t.status == "complete"]
    assert complete and all(t.params <= 3000 and t.metrics["params"] <= 3000 for t in complete)
    assert all({"params", "flops", "latency_ms", "size_bytes"} <= set(t.metrics) for t in complete)
    front = study.front
    assert front and all(study.weights_path(t.id).exists() for t in front)
    assert main(["show", str(out), "--front", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [t["id"] for t in shown["front"]] and shown["hypervolume"] > 0
    assert {t["id"] for t in shown["front"]} == {t.id for t in front}
    assert main(["export", str(out), "--front", "--out", str(tmp_path / "front")]) == 0
    assert len(list((tmp_path / "front").iterdir())) == len(front)
    # A bad constraint on the command line is a one-line error, exit code 2.
    assert main(["search", "--dataset", "digits", "--constraint", "params<=20000", "--constraint", "latncy<=5",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "latncy" in capsys.readouterr().err


def test_receptive_field_of_layer_genomes_and_as_a_constraint(digits, layer_space, tmp_path) -> None:
    from nasforge.space import Layer, LayerGenome

    space = LayerGraphSpace((1, 40, 51), 10)

    def rf(*layers: Layer) -> int:
        return space.receptive_field(LayerGenome(tuple(layers)))

    conv = lambda k, s=1: Layer.of("conv", kernel=k, channels=8, stride=s)  # noqa: E731
    pool = Layer.of("pool", op="max", size=2)
    assert rf(conv(3)) == 3
    assert rf(conv(3), pool, conv(3)) == 3 + 1 + 2 * 2  # the pool doubles every later step
    assert rf(conv(5, 2), Layer.of("norm"), conv(3)) == 5 + 2 * 2
    assert rf(conv(3), Layer.of("multiscale", kernels="1-3-5", channels=8)) == 3 + 4
    assert rf(conv(3), Layer.of("skip", span=1), Layer.of("dense", units=16), conv(7)) == 3  # up to the first dense
    # The hand CNNs of benchmarks/studies/fsdd_splits.py: four pools see the whole 51-frame clip, two do not.
    deep = [conv(3), pool, conv(3), pool, conv(3), pool, conv(3), pool, conv(3)]
    assert rf(*deep) == 78 and rf(*deep[:5]) == 18
    # As a constraint: only genomes that see at least 6 of the 8 x 8 digit pixels are drawn and trained.
    costs = CostModel(layer_space, digits.x_train[:1])
    feasible = FeasibleSpace(layer_space, parse_constraints(["receptive_field>=6"]), costs)
    rng = np.random.default_rng(0)
    assert all(layer_space.receptive_field(feasible.sample(rng)) >= 6 for _ in range(10))
    evaluator = TrainingEvaluator(layer_space, digits, TrainingOptions(epochs=1), constraints=parse_constraints(["receptive_field>=6"]))
    small = LayerGenome((conv(3),))
    result = evaluator.evaluate(small, seed=0)
    assert result.status == "failed" and "receptive_field=3 breaks receptive_field>=6" in result.error
    # A space without the notion says so up front.
    with pytest.raises(ConfigError, match="'cell' space has no receptive_field"):
        nasforge.search({"constraints": ["receptive_field>=6"]}, dataset="digits", space="cell", trials=1, epochs=1, progress=False,
                        out=str(tmp_path / "never"))
    assert not (tmp_path / "never").exists()
