"""Tasks (classification, multi-label, regression), their losses, optimizers, metrics and rewards,
the head sizes the spaces build for them, and devices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import make_multilabel_classification, make_regression
from sklearn.metrics import average_precision_score, mean_absolute_error, r2_score, roc_auc_score

import nasforge
from nasforge.data.objects import load_objects
from nasforge.data.tasks import infer_task
from nasforge.ensemble import Ensemble
from nasforge.errors import ConfigError
from nasforge.evaluate.metrics import CustomMetric
from nasforge.evaluate.tasks import Task
from nasforge.space import CellSpace, LayerGraphSpace, SequenceSpace

SMALL = dict(trials=2, epochs=2, max_blocks=2, strategy="random", progress=False)


@pytest.mark.parametrize("y, task", [
    (np.arange(40) % 3, "classification"),
    (np.array(["a", "b"] * 20), "classification"),
    (np.arange(40) % 2 == 0, "classification"),
    ((np.arange(40) % 4).astype(float), "classification"),  # whole-number floats: labels saved as floats
    (np.linspace(0, 1, 40), "regression"),
    (np.arange(60, dtype=float) * 7, "regression"),  # whole numbers, but more distinct values than labels have
    ((np.arange(80).reshape(40, 2) % 2), "multilabel"),
    (np.linspace(0, 1, 80).reshape(40, 2), "regression"),
])
def test_the_task_is_inferred_from_the_targets(y, task) -> None:
    assert infer_task(y) == task


@pytest.fixture(scope="module")
def regression():
    x, y = make_regression(n_samples=240, n_features=12, noise=5.0, random_state=0)
    return x, y + 1000  # targets far from 0 and 1: their scale must not matter


@pytest.fixture(scope="module")
def multilabel():
    return make_multilabel_classification(n_samples=240, n_features=12, n_classes=4, random_state=0)


@pytest.mark.parametrize("loss", ["mse", "l1", "huber"])
def test_regression_trains_with_each_loss_and_is_scored_in_the_targets_units(tmp_path, regression, loss) -> None:
    x, y = regression
    study = nasforge.search(data=(x, y), loss=loss, out=str(tmp_path / "run"), **{**SMALL, "epochs": 15}, batch_size=32, lr=0.01)
    data = load_objects((x, y))
    assert data.task == "regression" and data.num_classes == 1 and data.target_mean[0] == pytest.approx(y.mean(), rel=0.1)
    best = study.best
    assert study.evaluator.reward == "neg_rmse" and best.reward == pytest.approx(-best.metrics["rmse"])
    assert "confusion" not in best.metrics and "accuracy" not in best.metrics
    # The returned model predicts standardised targets; in the targets' units its test scores are sklearn's.
    model = study.best_model()
    with torch.no_grad():
        pred = model(data.x_test).numpy()[:, 0] * data.target_std[0] + data.target_mean[0]
    truth = data.y_test.numpy()[:, 0]
    assert study.final["test"]["mae"] == pytest.approx(mean_absolute_error(truth, pred), rel=1e-4)
    assert study.final["test"]["r2"] == pytest.approx(r2_score(truth, pred), abs=1e-4)
    # Trained, not guessing the mean: far better than the spread of the targets.
    assert study.final["test"]["rmse"] < 0.8 * truth.std()


def test_multilabel_trains_k_logits_with_binary_cross_entropy(tmp_path, multilabel) -> None:
    x, y = multilabel
    study = nasforge.search(data=(x, y), reward="average_precision", out=str(tmp_path / "run"), **SMALL)
    data = load_objects((x, y))
    assert data.task == "multilabel" and data.num_classes == 4 and data.y_train.shape[1] == 4
    metrics = study.best.metrics
    assert {"accuracy", "label_accuracy", "f1", "auc", "average_precision"} <= set(metrics) and "confusion" not in metrics
    model = study.best_model()
    with torch.no_grad():
        scores = torch.sigmoid(model(data.x_test)).numpy()
    assert study.final["test"]["average_precision"] == pytest.approx(
        np.mean([average_precision_score(data.y_test.numpy()[:, j], scores[:, j]) for j in range(4)]), rel=1e-4)
    with pytest.raises(ConfigError, match="loss 'cross_entropy' does not train multilabel"):
        nasforge.search(data=(x, y), loss="cross_entropy", out=str(tmp_path / "bad"), **SMALL)


def test_spaces_build_the_head_the_task_needs() -> None:
    for outputs in (1, 3):
        layers = LayerGraphSpace((1, 12), outputs)
        cell = CellSpace((1, 8, 8), outputs, channels=8)
        sequence = SequenceSpace(50, outputs, 16)
        rng = np.random.default_rng(0)
        assert layers.build(layers.sample(rng))(torch.zeros(2, 1, 12)).shape == (2, outputs)
        assert cell.build(cell.sample(rng))(torch.zeros(2, 1, 8, 8)).shape == (2, outputs)
        assert sequence.build(sequence.sample(rng))(torch.ones(2, 16, dtype=torch.long)).shape == (2, outputs)


def test_classification_rewards_losses_and_optimizers(tmp_path) -> None:
    from sklearn.datasets import load_digits

    d = load_digits()
    binary = d.target[:300] % 2
    study = nasforge.search(data=(d.images[:300], binary), reward="auc", optimizer="sgd", nesterov=True, lr=0.05,
                            out=str(tmp_path / "auc"), **SMALL)
    data = load_objects((d.images[:300], binary))
    model = study.best_model()
    with torch.no_grad():
        p = torch.softmax(model(data.x_test), 1).numpy()[:, 1]
    assert study.final["test"]["auc"] == pytest.approx(roc_auc_score(data.y_test.numpy(), p), rel=1e-6)
    assert study.final["test"]["confusion"] and study.best.reward == pytest.approx(study.best.metrics["auc"])
    # A factory is any callable taking (params, lr=, weight_decay=): a torch.optim class is one.
    study = nasforge.search(data=(d.images[:300], d.target[:300]), optimizer=torch.optim.RMSprop, lr=1e-3,
                            out=str(tmp_path / "rms"), **SMALL)
    assert study.store.get("config")["training"]["optimizer"] == "custom" and study.best is not None
    with pytest.raises(ConfigError, match="reward 'neg_rmse' does not apply to classification"):
        nasforge.search(data=(d.images[:300], d.target[:300]), reward="neg_rmse", out=str(tmp_path / "bad"), **SMALL)


def test_a_callable_loss_metric_and_direction(tmp_path, regression) -> None:
    x, y = regression
    seen = {}

    def mean_error(y_true, y_score):  # to minimise
        seen["shapes"] = (y_true.shape, y_score.shape)
        return float(np.mean(np.abs(y_true - y_score)))

    def smooth(outputs, targets):
        return torch.nn.functional.smooth_l1_loss(outputs, targets, beta=0.5)

    study = nasforge.search(data=(x, y), loss=smooth, reward=mean_error, reward_direction="min", out=str(tmp_path / "run"), **SMALL)
    best = study.best
    assert seen["shapes"] == ((48,), (48,)) and best.reward == pytest.approx(-best.metrics["mean_error"])
    assert best.metrics["mean_error"] == pytest.approx(best.metrics["mae"], rel=1e-5)
    config = study.store.get("config")
    assert (config["reward"], config["training"]["loss"], config["reward_direction"]) == ("custom", "custom", "min")


def test_a_metric_or_loss_that_raises_fails_the_trial_with_its_message(tmp_path, regression) -> None:
    x, y = regression

    def broken_metric(y_true, y_score):
        raise ZeroDivisionError("no samples of class 3")

    study = nasforge.search(data=(x, y), reward=broken_metric, out=str(tmp_path / "metric"), **SMALL)
    assert [t.status for t in study.trials] == ["failed", "failed"]
    assert all("metric 'broken_metric' raised ZeroDivisionError: no samples of class 3" in t.error for t in study.trials)

    def wrong_loss(outputs, targets):
        return outputs  # not a scalar

    study = nasforge.search(data=(x, y), loss=wrong_loss, out=str(tmp_path / "loss"), **SMALL)
    assert all(t.status == "failed" and "must return a scalar tensor" in t.error for t in study.trials)


def test_metrics_match_scikit_learn_on_known_outputs() -> None:
    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    out = rng.normal(size=(60, 3)) + np.eye(3)[y] * 1.5
    metrics = Task("classification", 3).metrics(y, out, 0.5, nasforge.evaluate.metrics.REWARDS["auc"])
    p = np.exp(out) / np.exp(out).sum(1, keepdims=True)
    assert metrics["auc"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"))
    assert metrics["accuracy"] == pytest.approx(np.mean(out.argmax(1) == y)) and len(metrics["confusion"]) == 3
    reg = Task("regression", 1, (100.0,), (10.0,))
    truth = rng.normal(100, 10, size=(30, 1))
    standardised = (truth - 100) / 10 + rng.normal(0, 0.1, size=(30, 1))
    m = reg.metrics(truth, standardised, 0.0)
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean((standardised * 10 + 100 - truth) ** 2)))
    custom = CustomMetric(lambda t, s: float("nan"), name="nan_metric")
    with pytest.raises(nasforge.TrialFailure, match="returned nan"):
        custom(truth, truth)


def test_ensembles_average_what_each_task_outputs() -> None:
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    x = torch.randn(5, 3)
    assert torch.allclose(Ensemble([a, b], task="regression")(x), (a(x) + b(x)) / 2)
    p = torch.sigmoid(Ensemble([a, b], task="multilabel")(x))
    assert torch.allclose(p, (torch.sigmoid(a(x)) + torch.sigmoid(b(x))) / 2, atol=1e-5)


def test_a_device_that_is_not_there_is_a_config_error_at_the_start(tmp_path, regression) -> None:
    x, y = regression
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="training.device: 'cuda' asked for, but this machine has no CUDA device"):
        nasforge.search(data=(x, y), device="cuda", out=str(tmp_path / "run"), **SMALL)
    assert not (tmp_path / "run").exists()  # nothing was created


class FitsOnlySmall(torch.nn.Module):
    """A network that runs out of device memory when it is wide (as a CUDA allocation failure would)."""

    def __init__(self, net: torch.nn.Module, wide: bool):
        super().__init__()
        self.net, self.wide = net, wide

    def forward(self, x):
        if self.wide and self.training:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return self.net(x)


def test_a_candidate_out_of_device_memory_fails_and_the_search_goes_on(tmp_path, regression, monkeypatch) -> None:
    x, y = regression
    original = LayerGraphSpace.build

    def build(self, genome):
        net = original(self, genome)
        return FitsOnlySmall(net, sum(p.numel() for p in net.parameters()) > 2000)

    monkeypatch.setattr(LayerGraphSpace, "build", build)
    study = nasforge.search(data=(x, y), out=str(tmp_path / "run"), **{**SMALL, "trials": 6})
    statuses = [t.status for t in study.trials]
    assert "failed" in statuses and "complete" in statuses and len(statuses) == 6
    assert all(t.error.startswith("out of device memory: CUDA out of memory") for t in study.trials if t.status == "failed")
