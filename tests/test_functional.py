"""The user's own training: evaluate(model, ctx), pruning through ctx.report, successive halving,
the final retrain and export; an Evaluator subclass implementing evaluate alone; callbacks, the
nasforge logger and the TensorBoard / MLflow loggers."""

from __future__ import annotations

import json
import logging
import re

import pytest
import torch
from sklearn.datasets import load_digits

import nasforge
from nasforge.evaluate.evaluator import Evaluator, Result
from nasforge.export import export_trial, load

SMALL = dict(max_blocks=2, strategy="random", progress=False)


@pytest.fixture(scope="module")
def digits_xy():
    d = load_digits()
    return d.images[:400], d.target[:400]


def train_and_score(model, ctx):
    """A user's loop: the study's optimizer and loss, an accuracy per epoch reported."""
    opt = ctx.optimizer(model)
    accuracy = 0.0
    for epoch in range(1, ctx.epochs + 1):
        model.train()
        for x, y in ctx.train:
            loss = ctx.loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        accuracy = ctx.score(model)["accuracy"]
        ctx.report(epoch, {"accuracy": accuracy, "score": accuracy})
    return {"score": accuracy, "accuracy": accuracy, "seen": float(len(ctx.train))}


def test_a_function_trains_every_trial_and_the_returned_model_exports(tmp_path, digits_xy) -> None:
    study = nasforge.search(data=digits_xy, evaluate=train_and_score, trials=3, epochs=2, out=str(tmp_path / "run"), **SMALL)
    assert [t.status for t in study.trials] == ["complete"] * 3
    best = study.best
    assert best.reward == best.metrics["score"] and best.metrics["seen"] == 256 and len(best.curve) == 2
    assert best.curve[-1]["val_score"] == best.reward
    assert study.store.get("config")["evaluator"] == "functional"
    # The returned model is the trial's network with its trained weights: export and load it.
    folder = export_trial(study.run_dir, tmp_path / "export")
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(load(folder)(x), study.best_model()(x), atol=1e-6)
    # The returned model's validation score (the task's built-in metrics) is the one the function saw.
    assert study.final["val"]["accuracy"] == pytest.approx(best.metrics["accuracy"]) and "accuracy" in study.final["test"]


def test_ctx_report_prunes_below_the_median_and_the_trial_is_recorded_pruned(tmp_path, digits_xy) -> None:
    def slow_then_fast(model, ctx):
        # Trials 1-3 report a high score at epoch 1; later trials a low one, and get stopped there.
        good = ctx.trial is None or ctx.trial <= 3
        for epoch in range(1, ctx.epochs + 1):
            ctx.report(epoch, 0.9 if good else 0.1)
        return 0.9 if good else 0.1

    slow_then_fast.__module__ = __name__
    callback = Recorder()
    study = nasforge.search(data=digits_xy, evaluate=slow_then_fast, trials=5, epochs=3, early_stop="median",
                            early_stop_min_trials=2, out=str(tmp_path / "run"), callbacks=[callback], **SMALL)
    statuses = [t.status for t in study.trials]
    assert statuses == ["complete", "complete", "complete", "pruned", "pruned"]
    pruned = study.trials[3]
    assert pruned.reward == 0.1 and len(pruned.curve) == 1 and "below the median" in pruned.error
    # Epoch callbacks saw every reported epoch, with the trial's id.
    assert [(i.trial, i.epoch) for i in callback.epochs] == [(t, e) for t in (1, 2, 3) for e in (1, 2, 3)] + [(4, 1), (5, 1)]


def test_successive_halving_passes_each_rungs_epochs_and_continues_the_weights(tmp_path, digits_xy) -> None:
    seen = []

    def count_epochs(model, ctx):
        seen.append((ctx.epochs, next(iter(model.parameters())).detach().clone()))
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)  # "training": the next rung must start from here
        return float(-len(seen))

    study = nasforge.search(data=digits_xy, evaluate=count_epochs, trials=3, fidelity="halving", min_epochs=1, eta=3, rungs=2,
                            out=str(tmp_path / "run"), **SMALL)
    epochs = [e for e, _ in seen]
    assert epochs[:3] == [1, 1, 1] and epochs[3:] == [2]  # the best of three continues for 3 - 1 epochs
    assert torch.allclose(seen[3][1], seen[0][1] + 1)  # trial 1 (the best at rung 1) went on from its own weights
    assert study.trials[0].metrics["fidelity"] == 3 and study.trials[1].metrics["fidelity"] == 1


def test_a_failing_function_or_a_bad_return_fails_the_trial_and_the_search_goes_on(tmp_path, digits_xy) -> None:
    def crashes_on_big(model, ctx):
        if ctx.trial % 2:
            raise KeyError("batch_norm_stats")
        return "excellent" if ctx.trial == 2 else 0.5

    study = nasforge.search(data=digits_xy, evaluate=crashes_on_big, trials=6, out=str(tmp_path / "run"), **SMALL,
                            callbacks=[Recorder()])
    errors = {t.error for t in study.trials if t.status == "failed"}
    assert len(study.trials) == 6 and study.best is not None
    assert any(e.startswith("evaluate raised KeyError: 'batch_norm_stats' (") and "test_functional.py" in e for e in errors)
    assert any("expected a number or a dict of numbers, got str" in e for e in errors)
    with pytest.raises(nasforge.ConfigError, match="a metric callable scores the built-in trainer"):
        nasforge.search(data=digits_xy, evaluate=crashes_on_big, reward=lambda a, b: 0.0, trials=1,
                        out=str(tmp_path / "bad"), **SMALL)


def test_the_final_retrain_calls_the_function_again(tmp_path, digits_xy) -> None:
    phases = []

    def note(model, ctx):
        phases.append((ctx.phase, ctx.epochs, len(ctx.train)))
        return train_and_score(model, ctx)["score"] if ctx.phase == "search" else None

    study = nasforge.search(data=digits_xy, evaluate=note, trials=2, epochs=1, final_epochs=2, final_data="train+val",
                            out=str(tmp_path / "run"), **SMALL)
    assert phases[-1] == ("retrain", 2, 256 + 64) and study.final["val_in_training"] is True


class Recorder(nasforge.Callback):
    def __init__(self):
        self.epochs, self.events = [], []

    def on_trial_start(self, study, trial_id, genome):
        self.events.append(("start", trial_id))

    def on_epoch_end(self, info):
        self.epochs.append(info)

    def on_trial_end(self, study, record):
        self.events.append(("end", record.id))

    def on_search_end(self, study):
        self.events.append(("search end", study.final["trial"]))


def test_callbacks_and_the_nasforge_logger(tmp_path, digits_xy, caplog) -> None:
    recorder, plain = Recorder(), []
    with caplog.at_level(logging.INFO, logger="nasforge"):
        study = nasforge.search(data=digits_xy, trials=3, epochs=2, out=str(tmp_path / "run"), lr=5.0, weight_decay=0.0,
                                callbacks=[recorder, lambda s, r: plain.append(r.id)], **SMALL)
    assert plain == [1, 2, 3]
    assert recorder.events[:2] == [("start", 1), ("end", 1)] and recorder.events[-1] == ("search end", study.final["trial"])
    assert {(i.trial, i.epoch) for i in recorder.epochs} >= {(1, 1), (1, 2)}
    assert {"train_loss", "val_loss", "val_score", "val_accuracy"} <= set(recorder.epochs[0].metrics)
    finished = [r for r in caplog.records if r.name == "nasforge" and r.getMessage().startswith("trial ")]
    assert len(finished) == 3
    for record, trial in zip(finished, study.trials, strict=True):
        assert record.levelno == (logging.WARNING if trial.reward is None else logging.INFO)


class MeanOfWeights(Evaluator):
    """A user's evaluator implementing evaluate alone: scores an untrained network by a made-up rule."""

    def __init__(self, space, data, training, reward):
        self.space = space

    def evaluate(self, genome, seed, epochs=None, warmstart=None, prune_below=None):
        torch.manual_seed(seed)
        model = self.space.build(genome)
        score = -sum(p.numel() for p in model.parameters())
        return Result("complete", reward=float(score), state_dict=model.state_dict())


def test_an_evaluator_implementing_evaluate_alone_runs_to_the_end(tmp_path, digits_xy) -> None:
    nasforge.register_evaluator("mean-of-weights", MeanOfWeights, replace=True)
    try:
        study = nasforge.search(data=digits_xy, evaluator="mean-of-weights", trials=3, out=str(tmp_path / "run"), **SMALL)
    finally:
        nasforge.EVALUATORS.unregister("mean-of-weights")
    assert len(study.trials) == 3 and study.final is not None and study.final["val"] == {} and study.final["test"] == {}
    assert study.best.params is None and study.best_model() is not None


def _tensorboard_events(folder) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_logger_writes_curves_metrics_and_the_final_model(tmp_path, digits_xy) -> None:
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    study = nasforge.search(data=digits_xy, trials=2, epochs=2, loggers=["tensorboard"], out=str(tmp_path / "run"), **SMALL)
    trial = _tensorboard_events(tmp_path / "run" / "tensorboard" / "trial_00001")
    assert trial["curve/val_accuracy"] == [p["val_accuracy"] for p in study.trials[0].curve]
    assert trial["metrics/accuracy"] == [pytest.approx(study.trials[0].metrics["accuracy"])]
    search = _tensorboard_events(tmp_path / "run" / "tensorboard" / "search")
    assert search["final/test_accuracy"] == [pytest.approx(study.final["test"]["accuracy"])]
    assert len(search["search/reward"]) == 2


def test_mlflow_logger_writes_a_run_per_trial_and_the_final_model(tmp_path, digits_xy, monkeypatch) -> None:
    mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    study = nasforge.search(data=digits_xy, trials=2, epochs=2, loggers=["mlflow"], out=str(tmp_path / "run"), **SMALL)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = mlflow.MlflowClient(tracking_uri=(tmp_path / "run" / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("run")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"search run", "trial 1", "trial 2"}
    trial = runs["trial 1"]
    assert trial.data.tags["mlflow.parentRunId"] == runs["search run"].info.run_id
    assert json.loads(trial.data.params["genome"]) == study.trials[0].genome
    assert trial.data.metrics["accuracy"] == pytest.approx(study.trials[0].metrics["accuracy"])
    history = client.get_metric_history(trial.info.run_id, "curve_val_accuracy")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx([p["val_accuracy"] for p in study.trials[0].curve])
    artifacts = {a.path for a in client.list_artifacts(runs["search run"].info.run_id, "final")}
    assert artifacts == {"final/final.pt", "final/genome.json"}
    assert runs["search run"].data.metrics["final_test_accuracy"] == pytest.approx(study.final["test"]["accuracy"])


def test_cli_version() -> None:
    from nasforge.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0


def test_the_progress_bar_counts_trials_not_the_promotions_of_halving(tmp_path, digits_xy, capsys) -> None:
    def score(model, ctx):
        return float(ctx.trial)

    settings = {**SMALL, "progress": True}
    nasforge.search(data=digits_xy, evaluate=score, trials=3, fidelity="halving", min_epochs=1, eta=3, rungs=2,
                    out=str(tmp_path / "run"), **settings)
    err = capsys.readouterr().err
    counts = re.findall(r"\b(\d+)/3 \[", err)
    assert counts and counts[-1] == "3"
    assert not re.search(r"search: \d+trial", err)  # how tqdm shows a count past its total (the promotion counted)
