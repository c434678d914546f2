"""The accelerator paths on a real GPU: mixed precision, channels_last, peak memory, a real CUDA
out-of-memory candidate, in-memory data kept on the GPU (and the pinned path when it does not fit),
streamed batches through pinned memory, latency on CUDA, the final retrain through torch.compile,
the pool's one GPU per worker and a one-shot search's supernet. Skipped without CUDA;
benchmarks/device_check.sh runs them (`-m gpu`) on a machine that has one. tests/test_accelerator.py
checks the same logic on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

import nasforge
from nasforge.data import batches as batches_module
from nasforge.data import load_dataset
from nasforge.data.batches import LoaderBatches
from nasforge.evaluate.cost import CostOptions, measure_costs
from nasforge.evaluate.trainer import TrainingOptions
from nasforge.evaluate.training import TrainingEvaluator
from nasforge.execute.pool import PoolExecutor, visible_gpus
from nasforge.space import LayerGraphSpace, LayerSpaceOptions

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

SMALL = dict(max_blocks=2, strategy="random", progress=False, device="cuda")


@pytest.fixture(scope="module")
def digits_xy():
    d = load_digits()
    return d.images, d.target


@pytest.fixture()
def digits_data():
    return load_dataset("digits")  # a fresh one per test: its device copies are per object


def conv_space(data) -> LayerGraphSpace:
    return LayerGraphSpace(data.input_shape, data.num_classes, LayerSpaceOptions(min_blocks=2, max_blocks=3, channels=(16, 32)))


@pytest.mark.parametrize("precision", ["32", "bf16", "16-mixed"])
def test_a_search_trains_on_the_gpu_in_each_precision(tmp_path, digits_xy, precision) -> None:
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    study = nasforge.search(data=digits_xy, precision=precision, channels_last=True, trials=3, epochs=3, batch_size=64,
                            out=str(tmp_path / "run"), **SMALL)
    assert all(t.status == "complete" for t in study.trials), [t.error for t in study.trials]
    for trial in study.trials:
        m = trial.metrics
        assert m["device"].startswith("cuda") and m["training_precision"] == precision
        assert m["peak_memory_mb"] is not None and m["peak_memory_mb"] > 0
    assert study.best.reward > 0.5  # learnt something (chance is 0.1)
    assert study.final["test"]["accuracy"] > 0.5


def test_16_mixed_scales_gradients(digits_data) -> None:
    from nasforge.evaluate import accelerator

    scalers = []
    original = accelerator.DeviceRun.scaler

    def recording(self):
        scaler = original(self)
        scalers.append(scaler)
        return scaler

    space = conv_space(digits_data)
    genome = space.sample(np.random.default_rng(3))
    evaluator = TrainingEvaluator(space, digits_data, TrainingOptions(epochs=2, batch_size=64, precision="16-mixed",
                                                                      device="cuda"), costs=None)
    accelerator.DeviceRun.scaler = recording
    try:
        result = evaluator.evaluate(genome, seed=0)
    finally:
        accelerator.DeviceRun.scaler = original
    assert result.status == "complete" and result.metrics["accuracy"] > 0.5
    assert scalers and isinstance(scalers[0], torch.amp.GradScaler) and scalers[0].is_enabled()


class Enormous(nn.Module):
    """A candidate that asks the GPU for twice its memory in its first training step."""

    def __init__(self, net: nn.Module, enormous: bool):
        super().__init__()
        self.net, self.enormous = net, enormous

    def forward(self, x):
        if self.enormous and self.training:
            total = torch.cuda.get_device_properties(x.device).total_memory
            waste = torch.empty(total // 2, dtype=torch.uint8, device=x.device)  # half of it: allocated
            more = torch.empty(total, dtype=torch.uint8, device=x.device)  # all of it again: cannot be
            return self.net(x) + waste[0] + more[0]
        return self.net(x)


def test_a_candidate_out_of_gpu_memory_fails_releases_it_and_the_search_goes_on(tmp_path, digits_xy, monkeypatch) -> None:
    original = LayerGraphSpace.build
    monkeypatch.setattr(LayerGraphSpace, "build", lambda self, genome: Enormous(original(self, genome), len(genome.layers) % 2 == 1))
    study = nasforge.search(data=digits_xy, trials=6, epochs=1, out=str(tmp_path / "run"), **SMALL)
    failed = [t for t in study.trials if t.status == "failed"]
    complete = [t for t in study.trials if t.status == "complete"]
    assert failed and complete and len(study.trials) == 6
    assert all(t.error.startswith("out of device memory: CUDA out of memory") for t in failed)
    assert all(t.metrics["peak_memory_mb"] > 0 for t in failed)
    # The half-memory block and the candidate's activations were handed back: what is left allocated is
    # the data kept on the GPU, far below what the failed candidate held.
    total_mb = torch.cuda.get_device_properties(0).total_memory / 2**20
    assert torch.cuda.memory_allocated(0) / 2**20 < 0.1 * total_mb
    assert torch.cuda.memory_reserved(0) / 2**20 < 0.25 * total_mb


def test_in_memory_splits_are_copied_to_the_gpu_once(digits_data) -> None:
    first = digits_data.batches("train", 64, "cuda", seed=0)
    second = digits_data.batches("train", 64, "cuda", seed=0)
    assert first.x.is_cuda and first.x.data_ptr() == second.x.data_ptr() and not first.copied
    x, y = next(iter(first.epoch()))
    assert x.is_cuda and y.is_cuda


def test_data_that_does_not_fit_goes_through_pinned_memory_in_the_same_order(digits_data, monkeypatch) -> None:
    resident = [(x.cpu(), y.cpu()) for x, y in digits_data.batches("train", 64, "cuda", seed=3).epoch()]
    monkeypatch.setattr(batches_module, "DEVICE_DATA_SHARE", 0.0)
    host = load_dataset("digits")
    streamed = host.batches("train", 64, "cuda", seed=3)
    assert streamed.copied and streamed.pin and not streamed.x.is_cuda
    batches = list(streamed.epoch())
    assert all(x.is_cuda and y.is_cuda for x, y in batches)
    assert len(batches) == len(resident)
    assert all(torch.equal(x.cpu(), rx) and torch.equal(y.cpu(), ry) for (x, y), (rx, ry) in zip(batches, resident))


def test_streamed_batches_are_pinned_and_copied_without_blocking() -> None:
    items = torch.utils.data.TensorDataset(torch.randn(100, 1, 8, 8), torch.randint(0, 3, (100,)))
    batches = LoaderBatches(items, 16, "cuda", seed=0, mean=[0.5], std=[2.0])
    assert batches.pin and batches.loader.pin_memory
    got = list(batches.epoch())
    assert all(x.is_cuda and y.is_cuda for x, y in got) and sum(len(y) for _, y in got) >= 99


def test_latency_on_cuda_is_synchronised_and_the_model_goes_back() -> None:
    model = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(64, 10))
    out = measure_costs(model, torch.randn(8, 3, 32, 32), CostOptions(batch_size=8, warmup=3, repeats=10, device="cuda"),
                        ["latency_ms"])
    assert out["latency_ms"] > 0 and out["latency_setup"]["device"] == "cuda"
    assert next(model.parameters()).device.type == "cpu"


def test_the_final_retrain_compiles_on_the_gpu(tmp_path, digits_xy) -> None:
    study = nasforge.search(data=digits_xy, trials=2, epochs=1, final_epochs=2, final_compile=True, out=str(tmp_path / "run"),
                            **SMALL)
    assert study.final["test"]["accuracy"] > 0.5


def test_the_pool_gives_each_worker_a_gpu_of_its_own(tmp_path, digits_xy) -> None:
    gpus = visible_gpus()
    study = nasforge.search(data=digits_xy, executor="pool", trials=2 * len(gpus), epochs=1, out=str(tmp_path / "run"), **SMALL)
    assert isinstance(study.executor, PoolExecutor) and study.executor.capacity == len(gpus)
    assert all(t.status == "complete" and t.metrics["device"] == "cuda:0" for t in study.trials)


def test_a_one_shot_search_trains_and_scores_the_supernet_on_the_gpu(tmp_path) -> None:
    study = nasforge.search(dataset="digits", space="cell", evaluation="one-shot", supernet_epochs=2, strategy="evolution",
                            population=4, sample_size=2, trials=8, top_k=2, epochs=2, batch_size=64, seed=0,
                            device="cuda", out=str(tmp_path / "run"), progress=False)
    assert all(t.status == "complete" for t in study.trials), [t.error for t in study.trials]
    assert all(p.device.type == "cuda" for p in study.evaluator.supernet.parameters())
    # A trial's weights are the standalone network's, on the CPU, like any trial's.
    state = study.evaluator.evaluate(study.space.from_json(study.trials[0].genome), 0).state_dict
    assert state and all(v.device.type == "cpu" for v in state.values())
    assert study.final["test"]["accuracy"] > 0.5  # the retrained best learnt something (chance is 0.1)
