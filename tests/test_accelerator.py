"""Running on the accelerator, checked on the CPU: precision (bf16 autocast; 16-mixed refused without
CUDA), channels_last, the final retrain through torch.compile (and its eager fallback), what every
trial records about its device, out-of-memory candidates, in-memory data kept on a device, latency
timing, and the pool's one-GPU-per-worker rule with fake device lists (tests/test_gpu.py runs the
real thing on a GPU)."""

from __future__ import annotations

import logging
import os
import pickle
import time
import weakref

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

import nasforge
from nasforge.config import build_config
from nasforge.data import load_dataset
from nasforge.data.batches import TensorBatches, fits_on_device
from nasforge.errors import ConfigError
from nasforge.evaluate import accelerator
from nasforge.evaluate import evaluator as evaluator_module
from nasforge.evaluate.cost import CostOptions, measure_costs
from nasforge.evaluate.evaluator import Evaluator, Result
from nasforge.evaluate.tasks import Task
from nasforge.evaluate.trainer import TrainingOptions, train_batches
from nasforge.evaluate.training import TrainingEvaluator
from nasforge.execute.base import ExecutorError
from nasforge.execute.pool import PoolExecutor, assign_gpus, visible_gpus
from nasforge.execute.ray import ray_slots
from nasforge.space import LayerGraphSpace, LayerSpaceOptions

SMALL = dict(max_blocks=2, strategy="random", progress=False)
CPU_ONLY = pytest.mark.skipif(torch.cuda.is_available(), reason="checks what happens on a machine without CUDA")


@pytest.fixture(scope="module")
def digits_xy():
    d = load_digits()
    return d.images[:400], d.target[:400]


@pytest.fixture(scope="module")
def digits_data():
    return load_dataset("digits")


def conv_space(data) -> LayerGraphSpace:
    return LayerGraphSpace(data.input_shape, data.num_classes, LayerSpaceOptions(min_blocks=2, max_blocks=3, channels=(16, 32)))


# -- precision ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("given, canonical", [(32, "32"), ("32-true", "32"), ("bf16-mixed", "bf16"), ("fp16", "16-mixed"),
                                              (16, "16-mixed"), ("16-mixed", "16-mixed")])
def test_precision_spellings(given, canonical) -> None:
    assert build_config({"training": {"precision": given}}).training.precision == canonical


def test_an_unknown_precision_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="training.precision: .*unknown precision 'fp8'; choose 32, bf16 or 16-mixed"):
        build_config({"training": {"precision": "fp8"}})


@CPU_ONLY
@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_16_mixed_without_cuda_is_a_config_error_naming_the_device(tmp_path, digits_xy, device) -> None:
    with pytest.raises(ConfigError, match="training.precision: 16-mixed .* needs a CUDA device, and training runs on the CPU"):
        nasforge.search(data=digits_xy, precision="16-mixed", device=device, trials=1, out=str(tmp_path / "run"), **SMALL)
    assert not (tmp_path / "run").exists()  # nothing was created


@CPU_ONLY
def test_latency_on_a_missing_cuda_device_is_a_config_error(tmp_path, digits_xy) -> None:
    with pytest.raises(ConfigError, match="costs.device: 'cuda' asked for, but this machine has no CUDA device"):
        nasforge.search(data=digits_xy, latency_device="cuda", trials=1, out=str(tmp_path / "run"), **SMALL)
    assert not (tmp_path / "run").exists()


def test_bf16_autocasts_the_forward_pass_and_keeps_weights_and_gradients_in_float32(digits_data) -> None:
    space = conv_space(digits_data)
    model = space.build(space.sample(np.random.default_rng(3)))
    seen: set[torch.dtype] = set()
    grads: set[torch.dtype] = set()
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
            module.weight.register_hook(lambda g: grads.add(g.dtype))
    batches = TensorBatches(digits_data.x_train[:256], digits_data.y_train[:256], 64, seed=0)
    outcome = train_batches(model, batches, TrainingOptions(epochs=1, precision="bf16"), 0, Task("classification", 10))
    assert seen == {torch.bfloat16}  # the convolutions ran in bfloat16 ...
    assert grads == {torch.float32} and all(p.dtype == torch.float32 for p in model.parameters())  # ... the weights did not
    assert np.isfinite(outcome.curve[-1]["train_loss"])


@pytest.mark.slow
def test_bf16_scores_within_a_point_of_fp32_on_digits(digits_data) -> None:
    # One seed's validation accuracy moves by a point between runs of the same precision on 288
    # samples, so the means over three seeds are compared (measured: 96.76% both, 8.1 vs 12.8 CPU-s).
    space = conv_space(digits_data)
    genome = space.sample(np.random.default_rng(3))
    means = {}
    for precision in ("32", "bf16"):
        evaluator = TrainingEvaluator(space, digits_data, TrainingOptions(epochs=6, batch_size=32, precision=precision), costs=None)
        results = [evaluator.evaluate(genome, seed) for seed in range(3)]
        assert all(r.status == "complete" and r.metrics["training_precision"] == precision for r in results)
        means[precision] = float(np.mean([r.metrics["accuracy"] for r in results]))
    assert means["32"] > 0.9
    assert abs(means["bf16"] - means["32"]) <= 0.01, means


def test_the_own_loop_gets_the_precision_through_ctx(tmp_path, digits_xy) -> None:
    dtypes: list[torch.dtype] = []

    def evaluate(model, ctx):
        opt = ctx.optimizer(model)
        for x, y in ctx.train:
            with ctx.autocast():
                out = model(x)
                loss = ctx.loss(out, y)
            dtypes.append(out.dtype)
            opt.zero_grad(set_to_none=True)
            ctx.backward_step(loss, opt)
        return ctx.score(model)["accuracy"]

    study = nasforge.search(data=digits_xy, evaluate=evaluate, precision="bf16", trials=1, epochs=1, out=str(tmp_path / "run"),
                            **SMALL)
    assert study.best.metrics["training_precision"] == "bf16" and set(dtypes) == {torch.bfloat16}


# -- what a trial records ---------------------------------------------------------------------------------
def test_every_trial_records_its_device_precision_peak_memory_and_latency_setup(tmp_path, digits_xy) -> None:
    study = nasforge.search(data=digits_xy, precision="bf16", trials=2, epochs=1, latency_batch=4, latency_warmup=2,
                            out=str(tmp_path / "run"), **SMALL)
    for trial in study.trials:
        m = trial.metrics
        assert m["device"] == "cpu" and m["training_precision"] == "bf16"
        # No per-trial figure on the CPU (accelerator.PeakMemory says why); CUDA's allocator has one.
        assert "peak_memory_mb" in m and m["peak_memory_mb"] is None
        assert m["latency_setup"] == {"device": "cpu", "batch": 4, "warmup": 2, "repeats": 10} and m["latency_ms"] > 0
        assert 0 <= m["precision"] <= 1  # the classification metric keeps its name


# -- channels_last --------------------------------------------------------------------------------------
def test_channels_last_applies_to_2d_convolution_nets_only(caplog) -> None:
    conv = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
    run = accelerator.place(conv, torch.device("cpu"), "32", channels_last=True)
    assert run.channels_last and conv[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = run.input(torch.randn(4, 1, 8, 8))
    assert x.is_contiguous(memory_format=torch.channels_last) and run.input(torch.randn(4, 5)).is_contiguous()
    accelerator._noted.clear()
    with caplog.at_level(logging.INFO, logger="nasforge"):
        flat = nn.Sequential(nn.Conv1d(1, 8, 3), nn.Flatten())
        run = accelerator.place(flat, torch.device("cpu"), "32", channels_last=True)
        accelerator.place(nn.Sequential(nn.Conv1d(1, 8, 3)), torch.device("cpu"), "32", channels_last=True)
    assert not run.channels_last
    assert [r.message for r in caplog.records].count(
        "training.channels_last: a network without 2-D convolutions keeps its memory format "
        "(channels_last applies to 2-D convolution nets only)") == 1  # noted once, not per trial


def test_a_search_trains_in_channels_last(tmp_path, digits_xy) -> None:
    study = nasforge.search(data=digits_xy, channels_last=True, trials=2, epochs=1, out=str(tmp_path / "run"), **SMALL)
    assert all(t.status == "complete" for t in study.trials)


# -- the final retrain through torch.compile ------------------------------------------------------------------
def test_final_compile_needs_final_epochs() -> None:
    with pytest.raises(ConfigError, match="final_compile: compiles the final retrain, so it needs final_epochs"):
        build_config({"training": {"final_compile": True}})


def test_final_compile_falls_back_to_eager_with_a_warning_when_the_compiler_fails(digits_data, monkeypatch, caplog) -> None:
    from torch._dynamo.exc import TorchDynamoException

    space = conv_space(digits_data)
    genome = space.sample(np.random.default_rng(3))

    class NoCompiler(nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            raise TorchDynamoException("InvalidCxxCompiler: No working C++ compiler found")

    def retrained(compile_: bool) -> dict[str, torch.Tensor]:
        torch.manual_seed(1)
        model = space.build(genome)
        options = TrainingOptions(epochs=1, batch_size=64, final_compile=compile_)
        TrainingEvaluator(space, digits_data, options, costs=None).retrain(model, seed=5, epochs=1)
        return model.state_dict()

    eager = retrained(False)
    monkeypatch.setattr(torch, "compile", lambda model, **_: NoCompiler(model))
    with caplog.at_level(logging.WARNING, logger="nasforge"):
        fallback = retrained(True)
    assert any("torch.compile failed (TorchDynamoException: InvalidCxxCompiler" in r.message and "runs eagerly" in r.message
               for r in caplog.records)
    # The eager run started from the same weights and seed: the same network, to the bit.
    assert all(torch.equal(eager[k], fallback[k]) for k in eager)


@pytest.mark.slow
def test_final_compile_trains_the_network_through_torch_compile(digits_data, monkeypatch) -> None:
    space = conv_space(digits_data)
    genome = space.sample(np.random.default_rng(3))
    compiled = []
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **kw: compiled.append(model) or real_compile(model, **kw))
    scores = {}
    for compile_ in (False, True):
        torch.manual_seed(1)
        model = space.build(genome)
        evaluator = TrainingEvaluator(space, digits_data, TrainingOptions(epochs=1, batch_size=64, final_compile=compile_),
                                      costs=None)
        evaluator.retrain(model, seed=5, epochs=1)
        scores[compile_] = evaluator.validate(model)
    assert len(compiled) == 1
    # Compiled kernels round differently (and AdamW turns the noise-sized gradients of a convolution's
    # bias before batch norm into full steps), but it is the same training: the same scores, nearly.
    assert scores[True]["loss"] == pytest.approx(scores[False]["loss"], rel=0.01)
    assert abs(scores[True]["accuracy"] - scores[False]["accuracy"]) <= 0.01


# -- out of memory -------------------------------------------------------------------------------------------
class RunsOutOfMemory(nn.Module):
    """A candidate whose training step holds activations and then fails to allocate, as a GPU would."""

    alive: list[weakref.ref] = []

    def __init__(self, net: nn.Module, too_big: bool):
        super().__init__()
        self.net, self.too_big = net, too_big
        RunsOutOfMemory.alive.append(weakref.ref(self))

    def forward(self, x):
        if self.too_big and self.training:
            activations = torch.ones(1_000_000)
            RunsOutOfMemory.alive.append(weakref.ref(activations))
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return self.net(x)


def test_an_out_of_memory_candidate_fails_its_memory_is_released_and_the_search_goes_on(tmp_path, digits_xy, monkeypatch) -> None:
    original = LayerGraphSpace.build
    monkeypatch.setattr(LayerGraphSpace, "build",
                        lambda self, genome: RunsOutOfMemory(original(self, genome), len(genome.layers) % 2 == 1))
    released = []

    def release() -> None:
        # By the time memory is handed back, nothing of the failed candidate may be left holding it.
        released.append([r for r in RunsOutOfMemory.alive if r() is not None
                         and (isinstance(r(), torch.Tensor) or r().too_big)])

    monkeypatch.setattr(evaluator_module, "release_device_memory", release)
    RunsOutOfMemory.alive.clear()
    study = nasforge.search(data=digits_xy, trials=6, epochs=1, out=str(tmp_path / "run"), **SMALL)
    failed = [t for t in study.trials if t.status == "failed"]
    assert failed and len(failed) < 6 and len(study.trials) == 6
    for trial in failed:
        assert trial.error == "out of device memory: CUDA out of memory. Tried to allocate 20.00 GiB"
        assert trial.metrics["device"] == "cpu" and trial.metrics["training_precision"] == "32" and trial.metrics["params"] > 0
    assert len(released) == len(failed) and released == [[]] * len(failed)


def test_release_device_memory_empties_the_cuda_cache_only_once_cuda_is_up(monkeypatch) -> None:
    emptied = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(1))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    accelerator.release_device_memory()
    assert emptied == []  # never initialise CUDA just to empty it
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    accelerator.release_device_memory()
    assert emptied == [1]


@pytest.mark.parametrize("error, oom", [
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"), True),
    (RuntimeError("cuDNN error: CUDNN_STATUS_NOT_ENOUGH_MEMORY"), True),
    (RuntimeError("mat1 and mat2 shapes cannot be multiplied"), False),
])
def test_out_of_memory_errors_are_recognised(error, oom) -> None:
    assert accelerator.is_out_of_memory(error) is oom
    result = evaluator_module.failed(error, 10, time.perf_counter(), {"device": "cuda:0"})
    assert result.error.startswith("out of device memory: ") is oom and result.metrics == {"device": "cuda:0"}


# -- in-memory data on the device ---------------------------------------------------------------------------------
def test_splits_are_copied_to_a_device_once_per_process_and_never_pickled(digits_data) -> None:
    data = pickle.loads(pickle.dumps(digits_data))
    x, y = data.on_device("train", "meta")  # a device with its own memory, as a GPU is
    assert x.device.type == "meta" and x.shape == data.x_train.shape
    assert data.on_device("train", "meta")[0] is x  # kept for the next trial
    assert data.on_device("train", "cpu")[0] is data.x_train  # the CPU path is the tensors themselves
    assert "_device_copies" not in pickle.loads(pickle.dumps(data)).__dict__  # a worker makes its own


def test_data_larger_than_its_share_of_the_gpu_stays_in_host_memory(digits_data, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1000, 4000))  # 1000 bytes free
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert fits_on_device(250, "cuda") and not fits_on_device(251, "cuda")
    assert fits_on_device(10**12, "cpu")
    data = pickle.loads(pickle.dumps(digits_data))
    x, y = data.on_device("train", "cuda")  # no CUDA needed: too large, nothing is copied
    assert x is data.x_train and y is data.y_train


def test_a_cuda_device_is_compared_with_its_index(monkeypatch) -> None:
    # torch.device("cuda") != torch.device("cuda:0"), the device of every tensor on it: without the
    # index, data already on the GPU would look foreign and be "copied" (pinned) batch by batch.
    from nasforge.data.batches import indexed_device

    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert indexed_device("cuda") == torch.device("cuda:0") and indexed_device("cuda:1") == torch.device("cuda:1")
    assert indexed_device("cpu") == torch.device("cpu")
    assert accelerator.DeviceRun(torch.device("cuda"), "bf16").describe() == {"device": "cuda:0", "training_precision": "bf16"}


def test_the_cpu_path_slices_the_tensors_themselves(digits_data) -> None:
    batches = digits_data.batches("train", 64, "cpu", seed=0)
    assert batches.x is digits_data.x_train and not batches.copied and not batches.pin
    first = next(iter(batches.epoch()))
    again = next(iter(digits_data.batches("train", 64, "cpu", seed=0).epoch()))
    assert torch.equal(first[0], again[0])  # the order is the trial's seed's


# -- latency --------------------------------------------------------------------------------------------------
def test_latency_is_timed_with_its_setup_recorded() -> None:
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    out = measure_costs(model, torch.randn(3, 8), CostOptions(batch_size=5, warmup=1, repeats=4), ["latency_ms"])
    assert out["latency_ms"] > 0 and out["latency_setup"] == {"device": "cpu", "batch": 5, "warmup": 1, "repeats": 4}
    with pytest.raises(ValueError, match="latency is timed on cpu or cuda, not 'tpu'"):
        CostOptions(device="tpu")


# -- several GPUs ---------------------------------------------------------------------------------------------
class GpuEcho(Evaluator):
    """Reports the GPU its worker was given and when it held it."""

    def evaluate(self, genome, seed: int, *args, **kwargs) -> Result:
        start = time.monotonic()
        time.sleep(0.2)
        return Result("complete", reward=0.0, metrics={"gpu": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid(),
                                                         "start": start, "end": time.monotonic()})


class CpuEcho(GpuEcho):
    @property
    def wants_gpu(self) -> bool:
        return False


def _never_shared(results: list[dict]) -> None:
    by_gpu: dict[str, list[tuple[float, float]]] = {}
    for m in results:
        by_gpu.setdefault(m["gpu"], []).append((m["start"], m["end"]))
    for spans in by_gpu.values():
        spans.sort()
        assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:]))


def test_a_pool_trial_never_lands_on_a_gpu_another_trial_holds() -> None:
    # Three fake GPUs, as visible_gpus() would list them; one worker each by default.
    executor = PoolExecutor(GpuEcho(), threads=1, gpus=["0", "1", "GPU-5f3a"])
    assert executor.capacity == 3
    try:
        for trial in range(1, 10):
            executor.submit(trial, None, seed=trial)
        results = [executor.next_result()[1].metrics for _ in range(9)]
    finally:
        executor.close()
    assert {m["gpu"] for m in results} == {"0", "1", "GPU-5f3a"}
    _never_shared(results)


def test_gpus_are_assigned_one_per_worker() -> None:
    assert assign_gpus([], None, 8) == (8, [])
    assert assign_gpus(["0", "1"], None, 8) == (2, ["0", "1"])
    assert assign_gpus(["0", "1", "2"], 2, 8) == (2, ["0", "1"])
    with pytest.raises(ExecutorError, match=r"executor.workers: 3 pool workers, but 2 GPU\(s\) visible \(0, 1\)"):
        assign_gpus(["0", "1"], 3, 8)


def test_visible_gpus_come_from_cuda_visible_devices(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, GPU-abc")
    assert visible_gpus() == ["2", "GPU-abc"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert visible_gpus() == ["0", "1"]


def test_the_pool_pins_gpus_only_for_evaluators_that_want_them(monkeypatch) -> None:
    from nasforge.execute import pool

    monkeypatch.setattr(pool, "visible_gpus", lambda: ["0", "1"])
    assert PoolExecutor(GpuEcho(), threads=1).gpus == ["0", "1"]
    cpu = PoolExecutor(CpuEcho(), workers=4, threads=1)  # training.device cpu: as many workers as asked
    assert cpu.gpus == [] and cpu.capacity == 4


def test_training_evaluators_want_a_gpu_unless_they_train_on_the_cpu(digits_data) -> None:
    space = conv_space(digits_data)
    assert TrainingEvaluator(space, digits_data, TrainingOptions(device="auto")).wants_gpu
    assert not TrainingEvaluator(space, digits_data, TrainingOptions(device="cpu"), costs=None).wants_gpu
    assert TrainingEvaluator(space, digits_data, TrainingOptions(device="cpu"), costs=CostOptions(device="cuda")).wants_gpu
    # One GPU named by index: workers must see the devices as they are, so none is pinned.
    assert not TrainingEvaluator(space, digits_data, TrainingOptions(device="cuda:1")).wants_gpu


def test_ray_slots_follow_the_gpu_share() -> None:
    resources = {"CPU": 16.0, "GPU": 2.0}
    assert ray_slots(resources, 1, 0) == 16
    assert ray_slots(resources, 1, 1) == 2
    assert ray_slots(resources, 1, 0.5) == 4
    assert ray_slots(resources, 8, 0.25) == 2  # CPUs bind first
    assert ray_slots(resources, 1, 1, workers=3) == 3


@pytest.mark.parametrize("config, message", [
    ({"executor": {"name": "ray", "gpus_per_trial": 1.5}}, "gpus_per_trial: 1.5; Ray shares a GPU by fractions of one"),
    ({"executor": {"name": "ray"}, "training": {"device": "cuda"}}, "cuda under the ray executor needs executor.gpus_per_trial"),
    ({"executor": {"name": "ray"}, "costs": {"device": "cuda"}}, "costs.device: cuda under the ray executor needs"),
    ({"executor": {"name": "pool"}, "training": {"device": "cuda:1"}}, "training.device: cuda:1 names one GPU, but the pool"),
])
def test_device_settings_that_cannot_work_with_the_executor_are_config_errors(config, message) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config(config)


class RayGpuEcho(GpuEcho):
    def evaluate(self, genome, seed: int, *args, **kwargs) -> Result:
        result = super().evaluate(genome, seed)
        import ray

        result.metrics["granted"] = [str(i) for i in ray.get_gpu_ids()]
        return result


@pytest.mark.slow
def test_ray_gives_each_trial_its_own_gpu_in_a_fresh_process(tmp_path, monkeypatch) -> None:
    pytest.importorskip("ray")
    from nasforge.execute.ray import RayExecutor

    # Ray's workers unpickle the evaluator by module name: let them import this file.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [os.path.dirname(__file__), os.environ.get("PYTHONPATH")])))
    # Two logical GPUs: Ray schedules by the count and sets CUDA_VISIBLE_DEVICES as on a real machine.
    executor = RayExecutor(RayGpuEcho(), num_cpus=4, num_gpus=2, gpus_per_trial=1, temp_dir=tmp_path / "ray")
    try:
        assert executor.capacity == 2
        for trial in range(1, 5):
            executor.submit(trial, None, seed=trial)
        results = [executor.next_result()[1] for _ in range(4)]
    finally:
        executor.close()
    assert all(r.status == "complete" for r in results), [r.error for r in results]
    results = [r.metrics for r in results]
    assert all(m["gpu"] == ",".join(m["granted"]) and len(m["granted"]) == 1 for m in results)
    _never_shared(results)
    # torch binds a process to the GPUs it saw first: no worker process ran two GPU trials.
    assert len({m["pid"] for m in results}) == 4


def test_search_help_lists_the_device_flags(capsys) -> None:
    from nasforge.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["search", "--help"])  # every description is printed, a literal % included (dataset.test_views)
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert all(flag in out for flag in ("--precision", "--channels-last", "--final-compile", "--latency-device"))
