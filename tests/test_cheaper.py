"""Cheaper evaluation: inheritance, identity inserts, successive halving, pruning, proxies, hparams."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nasforge.evaluate import TrainingEvaluator, TrainingOptions
from nasforge.evaluate.evaluator import Warmstart
from nasforge.evaluate.inherit import inherit
from nasforge.evaluate.proxies import naswot, synflow
from nasforge.schedule import SuccessiveHalving
from nasforge.space import Layer, LayerGenome, LayerGraphSpace, LayerSpaceOptions
from nasforge.strategy.prescreen import ProxyScreenedSpace

CONV = Layer.of("conv", kernel=3, channels=16, stride=1)


def _trained_state(space, genome):
    torch.manual_seed(0)
    model = space.build(genome)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))  # stand-in for training: anything but the fresh init
    return model.state_dict()


def test_inherited_child_holds_parent_tensors_exactly() -> None:
    space = LayerGraphSpace((1, 40), 10)
    parent = LayerGenome((CONV, Layer.of("norm"), Layer.of("act", fn="relu"), Layer.of("conv", kernel=5, channels=16, stride=1),
                          Layer.of("skip", span=3), Layer.of("dense", units=32)))
    state = _trained_state(space, parent)
    # The child lost the norm layer: everything after it moved one place down (and the skip's
    # span shrank by one so that it still starts after the first conv).
    child = LayerGenome(parent.layers[:1] + parent.layers[2:4] + (Layer.of("skip", span=2),) + parent.layers[5:])
    rng = np.random.default_rng(0)
    assert any(space.mutate(parent, rng)[0] == child for _ in range(400))  # mutation's delete does the same
    torch.manual_seed(1)
    model = space.build(child)
    report = inherit(space, model, child, parent, state)
    got = model.state_dict()
    for child_name, parent_name in [("l0", "l0"), ("l2", "l3"), ("l4", "l5"), ("classifier", "classifier")]:
        for attr in ("weight", "bias"):
            assert torch.equal(got[f"{child_name}.{attr}"], state[f"{parent_name}.{attr}"])
    assert report.copied == len(got) and report.fresh == 0


def test_identity_initialised_insert_leaves_output_unchanged() -> None:
    space = LayerGraphSpace((1, 40), 10)
    parent = LayerGenome((CONV, Layer.of("norm"), Layer.of("act", fn="relu"), Layer.of("conv", kernel=3, channels=16, stride=1),
                          Layer.of("skip", span=3), Layer.of("act", fn="relu")))
    state = _trained_state(space, parent)
    parent_model = space.build(parent)
    parent_model.load_state_dict(state)
    rng = np.random.default_rng(0)
    inserted = 0
    for _ in range(5000):
        if inserted == 4:
            break
        child, op = space.mutate(parent, rng)
        if op != "insert:conv" or len(child) != len(parent) + 1:
            continue
        at = next(i for i, layer in enumerate(child.layers) if i >= len(parent.layers) or layer != parent.layers[i])
        before = 16 if at > 0 else 1
        new = child.layers[at]
        if new["channels"] != before or new["stride"] != 1:
            continue
        model = space.build(child)
        report = inherit(space, model, child, parent, state)
        assert report.identity == 1
        x = torch.randn(8, 1, 40)
        with torch.no_grad():
            assert torch.allclose(model.eval()(x), parent_model.eval()(x), atol=1e-5)
        inserted += 1
    assert inserted >= 3


def test_successive_halving_promotes_exactly_the_fraction() -> None:
    sh = SuccessiveHalving(min_epochs=1, eta=3, rungs=3)
    assert sh.rung_epochs == [1, 3, 9] and sh.bracket_size == 9
    for t in range(1, 10):
        sh.start(t)
    decided = []
    for t in range(1, 10):
        decided += sh.record(t, reward=t / 10)
    assert sorted(d.trial for d in decided) == [1, 2, 3, 4, 5, 6] and all(d.epochs == 1 for d in decided)
    promos = [sh.next_promotion() for _ in range(3)]
    assert [p.trial for p in promos] == [9, 8, 7] and all((p.from_epochs, p.to_epochs) == (1, 3) for p in promos)
    assert sh.next_promotion() is None and not sh.wants_new()
    decided = sh.record(9, 0.95) + sh.record(8, 0.99) + sh.record(7, 0.5)
    assert sorted(d.trial for d in decided) == [7, 9] and all(d.epochs == 3 for d in decided)
    top = sh.next_promotion()
    assert (top.trial, top.to_epochs) == (8, 9)
    final = sh.record(8, 0.995)
    assert [(d.trial, d.reward, d.epochs) for d in final] == [(8, 0.995, 9)]
    assert sh.wants_new() and sh.brackets == 1


def test_successive_halving_resumes_mid_rung() -> None:
    a = SuccessiveHalving(min_epochs=2, eta=2, rungs=3)
    for t in range(1, 5):
        a.start(t)
        a.record(t, reward=float(t))
    first = a.next_promotion()  # handed out, then the process dies
    b = SuccessiveHalving(min_epochs=2, eta=2, rungs=3)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    b.requeue()
    again = [b.next_promotion(), b.next_promotion()]
    assert first in again and {p.trial for p in again} == {3, 4} and b.next_promotion() is None


def test_failed_members_are_never_promoted() -> None:
    sh = SuccessiveHalving(min_epochs=1, eta=2, rungs=2)
    sh.start(1)
    sh.start(2)
    decided = sh.record(1, None) + sh.record(2, 0.3)
    assert [d.trial for d in decided] == [1] and sh.next_promotion().trial == 2


@pytest.fixture(scope="module")
def evaluator(digits):
    space = LayerGraphSpace(digits.input_shape, digits.num_classes, LayerSpaceOptions(max_blocks=2, channels=(8, 16)))
    return TrainingEvaluator(space, digits, TrainingOptions(epochs=3))


def test_nan_candidate_is_pruned_with_its_curve_not_fatal(digits, evaluator) -> None:
    space = evaluator.space
    genome = space.sample(np.random.default_rng(0))
    x = digits.x_train.clone()
    x[5, 0, 3, 3] = float("nan")
    poisoned = TrainingEvaluator(space, type(digits)(**{**digits.__dict__, "x_train": x}), TrainingOptions(epochs=3))
    result = poisoned.evaluate(genome, seed=0)
    assert result.status == "pruned" and result.reward is None and "nan" in result.error


def test_median_rule_stops_a_hopeless_curve(evaluator) -> None:
    genome = evaluator.space.sample(np.random.default_rng(1))
    result = evaluator.evaluate(genome, seed=0, prune_below={1: 1.01})
    assert result.status == "pruned" and len(result.curve) == 1 and 0 <= result.reward <= 1 and "median" in result.error
    assert evaluator.evaluate(genome, seed=0, prune_below={1: -1.0}).status == "complete"


def test_continuation_and_inheritance_warmstarts(evaluator) -> None:
    space = evaluator.space
    genome = space.sample(np.random.default_rng(2))
    first = evaluator.evaluate(genome, seed=0, epochs=1)
    more = evaluator.evaluate(genome, seed=0, epochs=1, warmstart=Warmstart(first.state_dict))
    assert more.status == "complete" and more.curve[0]["train_loss"] < first.curve[0]["train_loss"]
    child, _ = space.mutate(genome, np.random.default_rng(3))
    inherited = evaluator.evaluate(child, seed=0, epochs=1, warmstart=Warmstart(first.state_dict, genome))
    assert inherited.metrics["inherited_tensors"] > 0


def test_proxies_score_untrained_networks(digits) -> None:
    space = LayerGraphSpace(digits.input_shape, digits.num_classes)
    rng = np.random.default_rng(0)
    for _ in range(5):
        model = space.build(space.sample(rng))
        assert np.isfinite(synflow(model, (1, 8, 8)))
        assert naswot(model, digits.x_train[:64]) > -np.inf
    screened = ProxyScreenedSpace(space, digits.x_train[:64], "naswot", pool=8, cap="none")
    g = screened.sample(np.random.default_rng(1))
    pool = [space.sample(np.random.default_rng(1)) for _ in range(1)]
    assert screened.scored == 8 and screened.score(g) >= max(screened.score(p) for p in pool if screened.inner.key(p) in screened._cache)


def test_training_hyperparameters_live_in_the_genome(digits) -> None:
    options = LayerSpaceOptions(max_blocks=2, hparams=(("batch_size", (32, 64)), ("lr", (0.001, 0.01))))
    space = LayerGraphSpace(digits.input_shape, digits.num_classes, options)
    rng = np.random.default_rng(0)
    g = space.sample(rng)
    assert dict(g.hparams).keys() == {"batch_size", "lr"}
    assert space.from_json(json.loads(json.dumps(space.to_json(g)))) == g
    ops = {space.mutate(g, rng)[1] for _ in range(60)}
    assert {"change:hp.lr", "change:hp.batch_size"} <= ops
    ev = TrainingEvaluator(space, digits, TrainingOptions(epochs=1, lr=0.5))
    opts, _ = ev._options(g)
    assert opts.lr == dict(g.hparams)["lr"] and opts.batch_size == dict(g.hparams)["batch_size"]


@pytest.mark.slow
def test_halving_study_resumes_mid_rung_and_promotes_the_fraction(tmp_path) -> None:
    from nasforge.api import build_study, resume_config
    from nasforge.config import build_config

    out = str(tmp_path / "sh")
    config = build_config(dataset="digits", strategy="random", trials=9, epochs=4, seed=3, out=out, progress=False, max_blocks=2,
                          fidelity="halving", min_epochs=1, eta=3, rungs=2)

    def crash_after_first_promotion(study, record) -> None:
        if record.metrics.get("fidelity") == 3:
            raise KeyboardInterrupt  # as if Ctrl-C arrived right after the first promotion finished

    study = build_study(config, callbacks=(crash_after_first_promotion,))
    with pytest.raises(KeyboardInterrupt):
        study.run()
    before = {t.id: (t.reward, t.metrics.get("fidelity")) for t in study.trials if t.status != "running"}
    assert sum(f == 3 for _, f in before.values()) == 1 and len(before) >= 3
    study.store.close()

    resumed = build_study(resume_config(out), resume=True)
    resumed.run()
    trials = resumed.trials
    assert len(trials) == 9 and all(t.status == "complete" for t in trials)
    for tid, (reward, fidelity) in before.items():
        if fidelity == 3:  # completed work is never redone or lost
            assert next(t for t in trials if t.id == tid).reward == reward
    # Three brackets of three: exactly one in three went on to 3 epochs, with a 3-epoch curve.
    promoted = [t for t in trials if t.metrics.get("fidelity") == 3]
    assert len(promoted) == 3 and all(len(t.curve) == 3 for t in promoted)
    assert all(len(t.curve) == 1 for t in trials if t not in promoted)


def test_hparams_are_decisions_for_policy_strategies(digits) -> None:
    options = LayerSpaceOptions(max_blocks=2, hparams=(("lr", (0.001, 0.01)), ("batch_size", (32, 64, 128))))
    space = LayerGraphSpace(digits.input_shape, digits.num_classes, options)
    rng = np.random.default_rng(4)
    assert space.decisions()[-2:] == [2, 3]
    checked = 0
    while checked < 30:
        g = space.sample(rng)
        if len(g) <= space.decision_depth():  # the decision encoding has bounded depth
            assert space.decode(space.encode(g)) == g
            checked += 1
