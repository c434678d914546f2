"""Selection operators pick in proportion to fitness / rank as defined; strategies persist exactly."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest

from nasforge.space import LayerGraphSpace
from nasforge.strategy import GeneticAlgorithm, RandomSearch, RegularizedEvolution
from nasforge.strategy.base import Observation
from nasforge.strategy.operators import Rank, RouletteWheel, Tournament

N = 40_000


def _frequencies(selection, fitness, seed=0) -> np.ndarray:
    picks = selection.select(fitness, N, np.random.default_rng(seed))
    return np.bincount(picks, minlength=len(fitness)) / N


def test_roulette_is_fitness_proportional() -> None:
    fitness = [1.0, 2.0, 3.0, 4.0]
    freq = _frequencies(RouletteWheel(), fitness)
    np.testing.assert_allclose(freq, np.array(fitness) / 10, atol=0.01)


def test_roulette_shifts_negative_fitness() -> None:
    probs = RouletteWheel().probabilities([-1.0, 0.0, 1.0])
    np.testing.assert_allclose(probs, [0, 1 / 3, 2 / 3])


def test_rank_is_rank_proportional_whatever_the_scale() -> None:
    fitness = [0.9, 0.1, 1000.0, 0.5]  # ranks 3, 1, 4, 2
    freq = _frequencies(Rank(), fitness)
    np.testing.assert_allclose(freq, np.array([3, 1, 4, 2]) / 10, atol=0.01)
    np.testing.assert_allclose(Rank().probabilities([1.0, 1.0]), [0.5, 0.5])


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_tournament_matches_order_statistics(size: int) -> None:
    fitness = [5.0, 1.0, 4.0, 2.0, 3.0]
    n = len(fitness)
    freq = _frequencies(Tournament(size), fitness)
    # The member of rank r (1 = worst) wins iff it is drawn and the others come from the r-1 worse ones.
    ranks = np.argsort(np.argsort(fitness)) + 1
    expected = np.array([comb(r - 1, size - 1) / comb(n, size) for r in ranks])
    np.testing.assert_allclose(freq, expected, atol=0.01)


@pytest.fixture
def space():
    return LayerGraphSpace((1, 40), 10)


def _drive(strategy, n: int, start: int = 1) -> list:
    """Ask/tell with a deterministic fake reward (genome length), returning the genomes asked."""
    out = []
    trial = start
    while len(out) < n:
        cand = strategy.ask()
        assert cand is not None
        strategy.tell(trial, cand, Observation(float(len(cand.genome)) + (trial % 3) * 0.1))
        out.append(cand.genome)
        trial += 1
    return out


@pytest.mark.parametrize("make", [
    lambda s: RandomSearch(s, 3),
    lambda s: RegularizedEvolution(s, 3, population=5, sample_size=2),
    lambda s: GeneticAlgorithm(s, 3, population=6, selection=Rank(), elitism=2),
])
def test_state_dict_resumes_exactly(space, make) -> None:
    import json

    a = make(space)
    _drive(a, 13)
    state = json.loads(json.dumps(a.state_dict()))  # must survive the store's JSON
    b = make(space)
    b.load_state_dict(state)
    assert _drive(a, 15, start=14) == _drive(b, 15, start=14)


def test_evolution_mutates_tournament_winner_and_ages_out(space) -> None:
    evo = RegularizedEvolution(space, 0, population=4, sample_size=4)
    _drive(evo, 4)
    assert [m.trial for m in evo.population] == [1, 2, 3, 4]
    best = max(evo.population, key=lambda m: m.reward)
    cand = evo.ask()
    assert cand.parents == (best.trial,) and cand.operator != "random"
    evo.tell(5, cand, Observation(0.0))
    assert [m.trial for m in evo.population] == [2, 3, 4, 5]  # the oldest died, not the worst


def test_genetic_keeps_elites_and_waits_for_its_generation(space) -> None:
    ga = GeneticAlgorithm(space, 0, population=4, elitism=1)
    first = [ga.ask() for _ in range(4)]
    assert ga.ask() is None  # the generation is out; nothing more until results come in
    for i, cand in enumerate(first, 1):
        ga.tell(i, cand, Observation(float(i)))
    assert ga.generation_index == 1 and [m.trial for m in ga.generation] == [1, 2, 3, 4]
    children = [ga.ask() for _ in range(3)]
    assert ga.ask() is None and all(c.parents for c in children)
    for i, cand in enumerate(children, 5):
        ga.tell(i, cand, Observation(None if i == 5 else 0.5))  # one child fails
    assert ga.generation_index == 2
    trials = [m.trial for m in ga.generation]
    assert trials[0] == 4  # the elite survives unchanged
    assert set(trials) == {4, 6, 7, 3}  # the failed child's place goes to the next best old member
