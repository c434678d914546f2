"""One-shot evaluation (evaluate/oneshot/): supernet training and its resume, path scoring, ENAS, the search."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import nasforge
from nasforge.data.datasets import Dataset
from nasforge.errors import ConfigError
from nasforge.evaluate.oneshot import OneShotEvaluator, PathSampler, ScoringOptions, SupernetOptions, train_supernet
from nasforge.evaluate.oneshot.enas import EnasEvaluator
from nasforge.evaluate.oneshot.training import SupernetError
from nasforge.evaluate.trainer import TrainingOptions
from nasforge.export import load_weights
from nasforge.space import CellSpace
from nasforge.store import Store
from nasforge.strategy import Reinforce
from nasforge.strategy.base import Candidate, Observation


def _tiny(rows: int = 48, length: int = 8) -> Dataset:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(rows * 2) % 3
    x = torch.randn(rows * 2, 1, length, generator=g) + y[:, None, None].float()  # learnable: the class shifts the mean
    return Dataset("tiny", x[:rows], y[:rows], x[rows:rows + rows // 2], y[rows:rows + rows // 2], x[rows + rows // 2:],
                   y[rows + rows // 2:], num_classes=3)


def test_fair_sampling_trains_every_op_of_every_edge_once_per_step() -> None:
    space = CellSpace((1, 8), 3)
    sampler = PathSampler(space, "fair")
    rng = np.random.default_rng(0)
    for _ in range(5):
        paths = np.array([space.encode(g) for g in sampler.step(rng)])
        assert paths.shape == (5, 6)
        assert all(sorted(column) == [0, 1, 2, 3, 4] for column in paths.T)
    assert len(PathSampler(space, "uniform").step(rng)) == 1
    with pytest.raises(ConfigError, match="uniform, fair"):
        PathSampler(space, "greedy")


@pytest.mark.parametrize("sampling", ["uniform", "fair"])
def test_killed_supernet_training_resumes_from_its_checkpoint_exactly(tmp_path, sampling: str) -> None:
    data, space = _tiny(), CellSpace((1, 8), 3, channels=4)
    options = SupernetOptions(epochs=3, sampling=sampling, batch_size=16)

    def trained(checkpoint, kill_after: int | None = None):
        torch.manual_seed(0)
        net = space.supernet()

        def kill(epoch: int) -> None:
            if epoch == kill_after:
                raise KeyboardInterrupt

        try:
            state = train_supernet(net, PathSampler(space, sampling), data.x_train, data.y_train, options, 7, checkpoint,
                                   on_epoch=kill)
        except KeyboardInterrupt:
            return None, None
        return net, state

    whole, state = trained(tmp_path / "a.pt")
    assert state.epochs_done == 3 and len(state.curve) == 3
    assert trained(tmp_path / "b.pt", kill_after=2) == (None, None)
    assert torch.load(tmp_path / "b.pt", weights_only=True)["state"]["epochs_done"] == 2
    resumed, state = trained(tmp_path / "b.pt")
    assert [p["epoch"] for p in state.curve] == [1, 2, 3]
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    # A checkpoint of other options is refused, not silently continued.
    with pytest.raises(SupernetError, match="other options"):
        train_supernet(space.supernet(), PathSampler(space, sampling), data.x_train, data.y_train,
                       SupernetOptions(epochs=4, sampling=sampling, batch_size=16), 7, tmp_path / "b.pt")


def test_scores_are_the_extracted_networks_and_do_not_depend_on_query_order() -> None:
    data, space = _tiny(), CellSpace((1, 8), 3, channels=4)
    evaluator = OneShotEvaluator(space, data, TrainingOptions(batch_size=16), SupernetOptions(epochs=2, batch_size=16),
                                 ScoringOptions(bn_batches=2, batch_size=16))
    rng = np.random.default_rng(0)
    genomes = [space.sample(rng) for _ in range(4)]
    first = [evaluator.evaluate(g, seed=0) for g in genomes]
    again = [evaluator.evaluate(g, seed=1) for g in reversed(genomes)][::-1]
    assert [r.reward for r in first] == [r.reward for r in again]
    for genome, result in zip(genomes, first):
        assert result.status == "complete" and result.params == result.metrics["params"]
        model = space.build(genome)
        model.load_state_dict(result.state_dict)  # the trial's weights are the standalone network's
        assert evaluator.validate(model)["accuracy"] == result.reward


@pytest.mark.parametrize("controller", ["independent", "lstm"])
def test_the_controller_raises_the_probability_of_an_always_rewarded_path(controller: str) -> None:
    space = CellSpace((1, 8), 3)
    strategy = Reinforce(space, seed=0, controller=controller)
    target = space.from_json(["nor_conv_3x3", "skip_connect", "none", "avg_pool_3x3", "nor_conv_1x1", "nor_conv_3x3"])
    choices = space.encode(target)

    def probability() -> float:
        if controller == "independent":
            return float(np.prod([p[c] for p, c in zip(strategy.probabilities(), choices)]))
        with torch.no_grad():
            _, logps = strategy.policy._run(choices, None)
        return float(np.exp(sum(float(lp[c]) for lp, c in zip(logps, choices))))

    before = probability()
    for trial in range(0, 60, 2):
        asked = strategy.ask()
        strategy.tell(trial, asked, Observation(0.0 if asked.genome != target else 1.0))
        strategy.tell(trial + 1, Candidate(target, info={"choices": choices}), Observation(1.0))
    assert probability() > 20 * before


def test_enas_trains_the_shared_weights_on_the_asked_paths_and_resumes(tmp_path) -> None:
    data, space = _tiny(), CellSpace((1, 8), 3, channels=4)

    def evaluator() -> EnasEvaluator:
        return EnasEvaluator(space, data, TrainingOptions(batch_size=16), SupernetOptions(epochs=0, batch_size=16),
                             ScoringOptions(bn_batches=1, batch_size=16), shared_steps=3, shared_every=2)

    ev = evaluator()
    ev.prepare(tmp_path)
    start = {k: v.clone() for k, v in ev.net.state_dict().items()}
    asked = [space.from_json(["nor_conv_1x1"] * 6), space.from_json(["skip_connect"] * 6)]
    for genome in asked:
        ev.evaluate(genome, 0)
    assert ev.phases == 0  # the first phase comes before the next query
    ev.evaluate(space.from_json(["none"] * 6), 0)
    assert ev.phases == 1 and (tmp_path / "supernet" / "enas.pt").exists()
    changed = {k.split(".")[0] + "." + k.split(".")[2] for k, v in ev.net.state_dict().items()
               if ".candidates." in k and not k.endswith("num_batches_tracked") and not torch.equal(v, start[k])}
    # Only the asked paths' ops (the 1x1 conv) were trained; the 3x3 conv, unasked, was not.
    assert changed and all(name.endswith("nor_conv_1x1") for name in changed)
    resumed = evaluator()
    resumed.prepare(tmp_path)
    assert (resumed.phases, resumed.queries) == (1, 2)
    assert all(torch.equal(a, b) for a, b in zip(ev.net.parameters(), resumed.net.parameters()))


@pytest.fixture(scope="module")
def one_shot_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("oneshot") / "run"
    study = nasforge.search(dataset="digits", space="cell", evaluation="one-shot", supernet_epochs=1, strategy="evolution",
                            population=4, sample_size=2, trials=12, top_k=2, epochs=1, batch_size=64, seed=0,
                            out=str(out), progress=False)
    return study, out


def test_a_one_shot_search_returns_the_best_of_the_top_k_retrained(one_shot_run) -> None:
    study, out = one_shot_run
    trials = study.trials
    assert len(trials) == 12 and all(t.status == "complete" for t in trials)
    final = study.final
    distinct = {}
    for t in sorted(trials, key=lambda t: (-t.reward, t.id)):  # a tie in reward and loss is one network: retrained once
        distinct.setdefault((t.reward, t.metrics["loss"]), t)
    assert set(final["candidates"]) == {str(t.id) for t in list(distinct.values())[:2]}
    best = max(final["candidates"].items(), key=lambda kv: (kv[1]["reward"], -int(kv[0])))
    assert final["trial"] == int(best[0]) and final["val"]["accuracy"] == pytest.approx(best[1]["accuracy"])
    assert "picked by validation among the best 2" in final["source"]
    assert (out / "supernet" / "checkpoint.pt").exists()
    model = study.best_model()
    assert isinstance(model, torch.nn.Module)


def test_a_one_shot_search_resumes_without_training_the_supernet_again(one_shot_run) -> None:
    study, out = one_shot_run
    before = (out / "supernet" / "checkpoint.pt").stat().st_mtime_ns
    resumed = nasforge.search(resume=True, out=str(out), trials=16, progress=False)
    assert len(resumed.trials) == 16
    assert (out / "supernet" / "checkpoint.pt").stat().st_mtime_ns == before
    # The same path scores the same with the reloaded supernet.
    first = resumed.trials[0]
    again = resumed.evaluator.evaluate(resumed.space.from_json(first.genome), 0)
    assert again.reward == first.reward
    store = Store.in_dir(out)
    try:
        assert json.loads(json.dumps(store.get("config")))["evaluation"]["name"] == "one-shot"
    finally:
        store.close()
    assert load_weights(out / "final.pt")


def test_a_one_shot_search_of_a_model_function_returns_a_loadable_model(tmp_path) -> None:
    import model_families as fam
    from nasforge.export import export_trial, load

    study = nasforge.search(dataset="digits", space=fam.op_cells, evaluation="one-shot", supernet_epochs=2,
                            strategy="evolution", population=4, sample_size=2, trials=8, top_k=2, epochs=1, batch_size=64,
                            seed=0, out=str(tmp_path / "run"), progress=False)
    trials = study.trials
    assert len(trials) == 8 and all(t.status == "complete" for t in trials), [t.error for t in trials]
    assert {"op0", "op1", "pool"} == set(trials[0].genome)
    assert "picked by validation among the best 2" in study.final["source"]
    folder = export_trial(tmp_path / "run", tmp_path / "model")
    x = study.evaluator.data.x_test[:16]
    with torch.no_grad():
        assert torch.equal(load(folder)(x), study.best_model().eval()(x))
    # A family with decisions that are not module choices cannot share weights: said before the run exists.
    with pytest.raises(ConfigError, match=r"not choices among modules: 'width' \(c.choice\)"):
        nasforge.search(dataset="digits", space=fam.tiny_resnet, evaluation="one-shot", trials=2, out=str(tmp_path / "r2"),
                        progress=False)
    assert not (tmp_path / "r2").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"executor": "pool", "workers": 2}, "executor: with evaluation one-shot"),
        ({"fidelity": "halving"}, "fidelity: with evaluation one-shot"),
        ({"supernet_epochs": 0}, "untrained supernet"),
        ({"space": "layers"}, "no supernet"),
        ({"reward": "auc"}, "reward: with evaluation one-shot"),
        ({"dataset": None, "data": (np.linspace(0, 1, 640).reshape(40, 1, 16), np.linspace(0, 1, 40))}, "regression task"),
        ({"evaluator": "functional"}, "evaluator: with evaluation one-shot"),
        ({"evaluate": lambda model, ctx: 0.5}, "evaluator: with evaluation one-shot"),
    ],
)
def test_one_shot_misconfigurations_are_config_errors(tmp_path, options: dict, message: str) -> None:
    settings = {"dataset": "digits", "space": "cell", "evaluation": "one-shot", "trials": 2, "out": str(tmp_path / "r"),
                "progress": False, **options}
    settings = {k: v for k, v in settings.items() if v is not None}
    with pytest.raises(ConfigError, match=message):
        nasforge.search(**settings)
    assert not (tmp_path / "r").exists()


def test_trials_with_the_same_scores_are_one_candidate_for_retraining() -> None:
    from nasforge.final import _distinct
    from nasforge.store import TrialRecord

    def record(i: int, reward: float, loss: float | None) -> TrialRecord:
        return TrialRecord(i, [], "", [], "", "complete", 0, reward=reward, metrics={} if loss is None else {"loss": loss})

    ranked = [record(1, 0.9, 0.31), record(2, 0.9, 0.31), record(3, 0.9, 0.30), record(4, 0.8, 0.5), record(5, 0.7, None),
              record(6, 0.7, None)]
    assert [r.id for r in _distinct(ranked, 3)] == [1, 3, 4]
    assert [r.id for r in _distinct(ranked, 9)] == [1, 3, 4, 5, 6]  # without a loss, equal rewards are not taken as one network


def test_the_cell_space_takes_its_width_and_depth_from_the_config(tmp_path) -> None:
    from nasforge.config import build_config
    from nasforge.data.load import load_data_for
    from nasforge.space.factory import make_space_for_data

    config = build_config(dataset="digits", space="cell", cell_channels=8, cells_per_stage=2, out=str(tmp_path / "r"))
    space = make_space_for_data(config, load_data_for(config))
    assert (space.channels, space.cells_per_stage) == (8, 2)
    with pytest.raises(ConfigError, match="cells_per_stage shape the cell space, not the 'layers' space"):
        nasforge.search(dataset="digits", cells_per_stage=2, trials=1, out=str(tmp_path / "r"), progress=False)


def test_with_cv_folds_the_top_paths_are_picked_by_their_mean_over_the_folds(tmp_path) -> None:
    study = nasforge.search(dataset="digits", space="cell", evaluation="one-shot", supernet_epochs=1, strategy="random",
                            trials=6, top_k=2, epochs=1, cv_folds=3, batch_size=64, seed=0, out=str(tmp_path / "run"),
                            progress=False)
    final = study.final
    candidates = final["candidates"]
    assert len(candidates) == 2 and all(len(c["cv_accuracy"]) == 3 for c in candidates.values())
    for c in candidates.values():  # the reward is the folds' mean, fold 1 the retrain on the training split
        assert c["accuracy"] == pytest.approx(sum(c["cv_accuracy"]) / 3)
    best = max(candidates.items(), key=lambda kv: (kv[1]["reward"], -int(kv[0])))
    assert final["trial"] == int(best[0])
    assert final["val"]["accuracy"] == pytest.approx(best[1]["cv_accuracy"][0])
    assert "picked by the mean over cross-validation folds among the best 2" in final["source"]


# Killed in the second candidate's first fold (its retrain kept, no fold yet), or in its second.
@pytest.mark.parametrize("killed_in", [3, 4])
def test_a_finalize_killed_between_folds_repeats_no_finished_retrain(tmp_path, monkeypatch, killed_in) -> None:
    from nasforge.evaluate.training import TrainingEvaluator

    settings = dict(dataset="digits", space="cell", evaluation="one-shot", supernet_epochs=1, strategy="random", trials=6,
                    top_k=2, epochs=1, cv_folds=3, batch_size=64, seed=0, progress=False)
    whole = nasforge.search(out=str(tmp_path / "whole"), **settings).final
    calls = {"retrain": 0, "fold": 0}
    real_retrain, real_fold = TrainingEvaluator.retrain, TrainingEvaluator._fold

    def retrain(self, *args, **kwargs):
        calls["retrain"] += 1
        return real_retrain(self, *args, **kwargs)

    def fold(self, *args, **kwargs):
        calls["fold"] += 1
        if calls["fold"] == killed_in:  # folds 2 and 3 of each candidate
            raise KeyboardInterrupt
        return real_fold(self, *args, **kwargs)

    monkeypatch.setattr(TrainingEvaluator, "retrain", retrain)
    monkeypatch.setattr(TrainingEvaluator, "_fold", fold)
    with pytest.raises(KeyboardInterrupt):
        nasforge.search(out=str(tmp_path / "killed"), **settings)
    assert calls == {"retrain": 2, "fold": killed_in}
    resumed = nasforge.search(resume=True, out=str(tmp_path / "killed"), progress=False).final
    # Only the fold that was running is trained again, then the final model is the first candidate's kept retrain.
    assert calls == {"retrain": 2, "fold": 5}
    assert resumed["candidates"] == whole["candidates"] and resumed["trial"] == whole["trial"]
    assert resumed["val"] == whole["val"] and resumed["test"] == whole["test"]
    store = Store.in_dir(tmp_path / "killed")
    try:  # every candidate finished: none is left between its folds
        assert store.get("final_folds") == {} and set(store.get("final_candidates")) == set(whole["candidates"])
    finally:
        store.close()
