"""Define-by-run spaces (space/function.py): what is derived from a model function, and how a broken
definition is reported. Searches with them are in test_own_model.py."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch import nn

import model_families as fam
import nasforge
from nasforge.errors import ConfigError, InvalidGenome
from nasforge.space.choices import ChoiceGenome, Choices, DefinitionError
from nasforge.space.function import FunctionSpace
from nasforge.space.resolve import is_model_function, space_from_record, space_record
from nasforge.strategy.base import Candidate, Observation
from nasforge.strategy.reinforce import Reinforce


@pytest.fixture(scope="module")
def space() -> FunctionSpace:
    return FunctionSpace(fam.tiny_resnet)


def _samples(space: FunctionSpace, n: int, seed: int = 0) -> list[ChoiceGenome]:
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def test_exploration_finds_every_decision_in_the_functions_order(space: FunctionSpace) -> None:
    names = [d.name for d in space.decision_list]
    assert names == ["width", "depth", "kernel0", "block0", "kernel1", "block1", "kernel2", "block2", "head_dropout", "dropout"]
    assert space.decisions() == [2, 3, 2, 2, 2, 2, 2, 2, 2, 3]
    assert space.decision_list[-1].options == (0.1, 0.3, 0.5)  # c.float with a step: a grid, 0.1 + 0.2 stored as 0.3


def test_conditional_decisions_appear_with_the_decision_they_depend_on(space: FunctionSpace) -> None:
    for genome in _samples(space, 40):
        depth = genome["depth"]
        assert all((f"kernel{i}" in genome) == (i < depth) for i in range(3))
        assert ("dropout" in genome) == genome["head_dropout"]
        code = space.encode(genome)
        assert [c >= 0 for c in code] == space.occurred(genome)
        features = space.decision_features(np.array([code]))[0]
        assert features.sum() == sum(space.occurred(genome))  # one-hot for what occurred, nothing for the rest


def test_encode_decode_round_trip_and_genome_json(space: FunctionSpace) -> None:
    for genome in _samples(space, 40, seed=1):
        assert space.decode(space.encode(genome)) == genome
        data = space.to_json(genome)
        assert space.from_json(pickle.loads(pickle.dumps(data))) == genome
        assert space.key(space.from_json(dict(reversed(list(data.items()))))) == space.key(genome)  # canonical JSON
    # Any choice vector decodes to a valid genome; choices of decisions that do not occur are ignored.
    rng = np.random.default_rng(2)
    for _ in range(20):
        choices = [int(rng.integers(n)) for n in space.decisions()]
        genome = space.decode(choices)
        assert all(c == choices[i] for i, c in enumerate(space.encode(genome)) if c >= 0)
        space.build(genome)


def test_mutation_changes_one_decision_and_keeps_the_rest(space: FunctionSpace) -> None:
    rng = np.random.default_rng(3)
    for parent in _samples(space, 40, seed=3):
        child, operator = space.mutate(parent, rng)
        name = operator.removeprefix("mutate:")
        assert operator.startswith("mutate:") and child[name] != parent[name]
        kept = [n for n in parent if n != name and n in child]
        assert all(child[n] == parent[n] for n in kept)  # unaffected decisions unchanged
        if name == "depth" and child["depth"] > parent["depth"]:
            assert f"kernel{child['depth'] - 1}" in child  # new blocks' decisions were drawn
        if name == "depth" and child["depth"] < parent["depth"]:
            assert f"kernel{parent['depth'] - 1}" not in child  # and dropped ones are gone


def test_crossover_children_are_valid_mixes_of_their_parents(space: FunctionSpace) -> None:
    rng = np.random.default_rng(4)
    genomes = _samples(space, 30, seed=4)
    for a, b in zip(genomes, genomes[1:]):
        child = space.crossover(a, b, rng)
        assert space.build(child) is not None  # replays: the function asks exactly its decisions
        for name, value in child.items():
            if name in a or name in b:
                assert value in (a.get(name), b.get(name))


def test_build_uses_the_users_modules_and_workers_get_the_function_by_reference(space: FunctionSpace) -> None:
    genome = space.from_json({"width": 8, "depth": 1, "kernel0": 3, "block0": "residual", "head_dropout": False})
    net = space.build(genome)
    assert isinstance(net[1], fam.Block) and net[1].residual and net(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    assert not any(p.is_meta for p in net.parameters())
    copy = pickle.loads(pickle.dumps(space))
    assert copy.function is fam.tiny_resnet and copy.decisions() == space.decisions()
    assert space_from_record(space_record(space)).decisions() == space.decisions()  # what a run records rebuilds it


def test_choices_api_values_and_modules() -> None:
    picks = iter([1, 0, 2, 1, 1])
    c = Choices(lambda d: next(picks))
    assert c.choice("kernel", [(3, 3), (5, 5)]) == (5, 5)  # the user's own option objects come back
    assert c.int("depth", 2, 6, step=2) == 2
    assert c.float("lr", 1e-4, 1e-2, log=True) == pytest.approx(1e-4 * 100 ** (2 / 9))
    assert c.bool("skip") is True
    act = c.module("act", {"relu": nn.ReLU, "gelu": nn.GELU()})
    assert isinstance(act, nn.GELU)
    assert c.choice("kernel", [[3, 3], [5, 5]]) == [5, 5]  # asked again: the same answer
    assert dict(c.genome()) == {"kernel": [5, 5], "depth": 2, "lr": pytest.approx(1e-4 * 100 ** (2 / 9)), "skip": True, "act": "gelu"}
    with pytest.raises(DefinitionError, match="'kernel' is asked with options"):
        c.choice("kernel", [3, 5])
    with pytest.raises(DefinitionError, match="not JSON data"):
        Choices(lambda d: 0).choice("block", [nn.ReLU()])


def test_a_name_with_two_option_lists_is_a_clear_error() -> None:
    with pytest.raises(DefinitionError, match=r"same_name_other_options.*'kernel' is asked with options \[.*but was asked before with \["):
        FunctionSpace(fam.same_name_other_options)


def test_a_function_that_is_not_deterministic_is_refused() -> None:
    with pytest.raises(DefinitionError, match="not_deterministic.*is not deterministic.*draw no random numbers"):
        FunctionSpace(fam.not_deterministic)


def test_a_function_that_always_raises_is_refused_with_its_message() -> None:
    message = r"always_raises.*built no network.*ValueError: this family needs a GPU kernel.*model_families.py:\d+"
    with pytest.raises(ConfigError, match=message):
        FunctionSpace(fam.always_raises)


def test_a_function_that_raises_for_some_values_gives_genomes_that_fail_with_its_message() -> None:
    space = FunctionSpace(fam.raises_when_wide)
    with pytest.raises(InvalidGenome, match=r"raises_when_wide .* raised ValueError: width 16 is not supported by this family yet \(at "):
        space.build(space.from_json({"width": 16}))
    with pytest.raises(InvalidGenome, match="not one of its options"):
        space.from_json({"width": 12})


def test_closures_and_lambdas_cannot_cross_to_workers() -> None:
    def local(c: nasforge.Choices) -> nn.Module:
        return nn.Linear(64, c.choice("units", [8, 16]))

    space = FunctionSpace(local)  # fine in this process
    with pytest.raises(ConfigError, match=r"cannot be sent to worker processes: it is defined inside another function"):
        pickle.dumps(space)
    with pytest.raises(ConfigError, match="it is a lambda"):
        pickle.dumps(FunctionSpace(lambda c: nn.Linear(64, c.choice("units", [8, 16]))))


def test_model_functions_are_told_from_space_factories() -> None:
    def factory(input_shape, num_classes):  # noqa: ANN001, ANN202
        return None

    assert is_model_function(fam.tiny_resnet) and is_model_function(lambda c: None)
    assert not is_model_function(factory) and not is_model_function(nasforge.LayerGraphSpace)
    assert not is_model_function(FunctionSpace(fam.mlp))


def test_reinforce_learns_nothing_about_decisions_that_did_not_occur(space: FunctionSpace) -> None:
    names = [d.name for d in space.decision_list]
    for controller in ("independent", "lstm"):
        strategy = Reinforce(space, seed=0, controller=controller)
        shallow = space.from_json({"width": 4, "depth": 1, "kernel0": 1, "block0": "plain", "head_dropout": False})
        before = strategy.state_dict()["policy"]
        for i, reward in enumerate([0.1, 0.9, 0.2, 0.8]):
            cand = strategy.ask()
            # Told about the shallow genome, as it would be after a resume (no sampled choices in info).
            strategy.tell(i + 1, Candidate(shallow, operator=cand.operator), Observation(reward))
        after = strategy.state_dict()["policy"]
        if controller == "independent":
            for row, name in enumerate(names):
                changed = before["logits"][row] != after["logits"][row]
                assert changed == (name in shallow), name
        else:
            # Heads of decisions that never occurred get no gradient.
            heads = {k: v for k, v in after["weights"].items() if k.startswith("heads.")}
            for row, name in enumerate(names):
                moved = heads[f"heads.{row}.weight"]["tensor"] != before["weights"][f"heads.{row}.weight"]["tensor"]
                assert moved == (name in shallow), name
