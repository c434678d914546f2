"""`training.final_ensemble` / `final_seeds`: the returned model averages the best trials' networks, or
retrains of them from several seeds."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import nasforge
from nasforge.config import build_config
from nasforge.ensemble import Ensemble
from nasforge.errors import ConfigError
from nasforge.evaluate.trainer import score
from nasforge.export import TORCHSCRIPT_FILE, check_export, export_trial, load, real_batch


def test_ensemble_returns_the_log_of_the_mean_probability() -> None:
    torch.manual_seed(0)
    a, b = nn.Linear(4, 3), nn.Linear(4, 3)
    x = torch.randn(5, 4)
    expected = (a(x).softmax(-1) + b(x).softmax(-1)) / 2
    out = Ensemble([a, b])(x)
    assert torch.allclose(out.exp(), expected, atol=1e-6)
    assert torch.allclose(out.exp().sum(-1), torch.ones(5))
    # Used as logits, it gives the same probabilities back, so losses and votes need no special case.
    assert torch.allclose(out.log_softmax(-1), out, atol=1e-6)
    assert torch.allclose(Ensemble([a])(x), a(x).log_softmax(-1))
    with pytest.raises(ValueError, match="at least one member"):
        Ensemble([])


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> nasforge.Study:
    out = tmp_path_factory.mktemp("ensemble") / "run"
    # keep_top 1 on purpose: the study must keep the weights of every member anyway.
    return nasforge.search({"space": {"channels": [8, 16], "max_blocks": 3}, "training": {"final_ensemble": 3}},
                           dataset="digits", strategy="random", trials=5, epochs=2, seed=3, keep_top=1, inherit=False,
                           out=str(out), progress=False)


def test_the_returned_model_averages_the_three_best_trials(study: nasforge.Study) -> None:
    final = study.final
    ranked = sorted(study.store.trials("complete"), key=lambda t: (-t.reward, t.id))
    assert final["members"] == [t.id for t in ranked[:3]] and final["trial"] == ranked[0].id
    assert "ensemble of trials" in final["source"]
    model = study.best_model()
    assert isinstance(model, Ensemble) and len(model.members) == 3
    data = study.evaluator.data
    # The recorded test score is the ensemble's, and it is the mean of the members' probabilities.
    assert score(model, data.x_test, data.y_test, data.num_classes)["accuracy"] == pytest.approx(final["test"]["accuracy"])
    members = []
    for trial_id in final["members"]:
        member = study.space.build(study.space.from_json(study.store.trial(trial_id).genome))
        member.load_state_dict(torch.load(study.weights_path(trial_id), weights_only=True))
        members.append(member.eval())
    with torch.no_grad():
        mean = sum(m(data.x_test).softmax(-1) for m in members) / 3
        assert torch.allclose(model(data.x_test).exp(), mean, atol=1e-5)
    # Finalizing again changes nothing.
    assert study.finalize() == final


def test_an_ensemble_exports_and_loads_whole(study: nasforge.Study, tmp_path) -> None:
    batch = real_batch(study.run_dir, n=16)
    with torch.no_grad():
        expected = study.best_model()(batch)
    folder = export_trial(study.run_dir, tmp_path / "ts", format="torchscript")
    loaded = load(folder)
    assert isinstance(loaded, Ensemble) and len(loaded.members) == 3
    with torch.no_grad():
        assert torch.equal(loaded(batch), expected)
    assert (folder / TORCHSCRIPT_FILE).exists()
    assert check_export(folder, batch)["torchscript"] < 1e-5
    # Any single trial, the best one included, still exports alone, from its own weights.
    for trial_id in study.final["members"][:2]:
        folder = export_trial(study.run_dir, tmp_path / f"one{trial_id}", trial_id=trial_id)
        single = load(folder)
        own = study.space.build(study.space.from_json(study.store.trial(trial_id).genome))
        own.load_state_dict(torch.load(study.weights_path(trial_id), weights_only=True))
        with torch.no_grad():
            assert not isinstance(single, Ensemble) and torch.equal(single(batch), own.eval()(batch))
        assert json.loads((folder / "genome.json").read_text())["test"] is None  # the test score is the ensemble's


def test_ensemble_members_are_retrained_with_final_epochs(tmp_path) -> None:
    study = nasforge.search({"space": {"channels": [8], "max_blocks": 2}, "training": {"final_ensemble": 2, "final_epochs": 1}},
                            dataset="digits", strategy="random", trials=3, epochs=1, seed=0, inherit=False,
                            out=str(tmp_path / "run"), progress=False)
    assert len(study.final["members"]) == 2 and study.final["source"].endswith("retrained for 1 epochs")
    assert math.isfinite(study.final["test"]["loss"])


def test_final_seeds_average_retrains_of_the_best_genome(tmp_path) -> None:
    study = nasforge.search({"space": {"channels": [8], "max_blocks": 2}, "training": {"final_seeds": 3, "final_epochs": 1}},
                            dataset="digits", strategy="random", trials=3, epochs=1, seed=0, inherit=False,
                            out=str(tmp_path / "run"), progress=False)
    final = study.final
    assert final["members"] == [final["trial"]] * 3 and "3 times from seeds" in final["source"]
    model = study.best_model()
    assert isinstance(model, Ensemble) and len(model.members) == 3
    first, *others = [torch.cat([p.flatten() for p in m.parameters()]) for m in model.members]
    assert all(not torch.equal(first, other) for other in others)  # three different retrains, not one copied
    data = study.evaluator.data
    assert score(model, data.x_test, data.y_test, data.num_classes)["accuracy"] == pytest.approx(final["test"]["accuracy"])
    assert study.finalize() == final
    folder = export_trial(study.run_dir, tmp_path / "export")
    batch = real_batch(study.run_dir, n=8)
    with torch.no_grad():
        assert torch.equal(load(folder)(batch), model(batch))


def test_final_ensemble_is_refused_with_several_objectives() -> None:
    with pytest.raises(ConfigError, match=r"training\.final_ensemble"):
        build_config({"training": {"final_ensemble": 3}, "objectives": ["accuracy", "params"]}, dataset="digits")
    with pytest.raises(ConfigError, match="final_ensemble"):
        build_config({"training": {"final_ensemble": 0}}, dataset="digits")
    with pytest.raises(ConfigError, match=r"training\.final_seeds"):
        build_config({"training": {"final_seeds": 2, "final_epochs": 3}, "objectives": ["accuracy", "params"]}, dataset="digits")
    with pytest.raises(ConfigError, match="final_seeds: retrains from several seeds need final_epochs"):
        build_config({"training": {"final_seeds": 2}}, dataset="digits")
