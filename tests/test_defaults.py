"""Defaults that fit the data: a batch size giving every candidate enough optimizer steps, a layers space
that downsamples large images early and caps compute per sample, a warning for splits whose classes
never occur in training. (Their figures: benchmarks/quality/defaults_fit.py.)"""

from __future__ import annotations

import numpy as np
import pytest

import nasforge
from nasforge.api import build_study, compute_cap
from nasforge.cli import main
from nasforge.config import build_config
from nasforge.data.datasets import split_warnings
from nasforge.evaluate.trainer import auto_batch_size
from nasforge.space import LayerGraphSpace, LayerSpaceOptions
from nasforge.store import Store


def test_the_automatic_batch_size_gives_enough_steps() -> None:
    assert auto_batch_size(1078) == 32  # digits: 34 steps an epoch, not 9
    assert auto_batch_size(3200) == 128  # mnist1d: as before
    assert auto_batch_size(100) == 16 and auto_batch_size(10**6) == 128
    assert all(n / auto_batch_size(n) >= 20 for n in range(320, 5000, 37))


def test_the_study_records_the_batch_size_it_trains_with(tmp_path) -> None:
    study = build_study(build_config(dataset="digits", trials=1, out=str(tmp_path / "r"), progress=False))
    try:
        assert study.evaluator.training.batch_size == 32
        assert Store.in_dir(tmp_path / "r").get("config")["training"]["batch_size"] == 32  # so resume trains alike
    finally:
        study.rundir.release()


def test_large_images_are_downsampled_early_and_small_inputs_sampled_as_before() -> None:
    big = LayerGraphSpace((1, 28, 28), 10)
    for seed in range(5):
        genome = big.sample(np.random.default_rng(seed))
        first = genome.layers[0]
        assert first.kind == "conv" and first["stride"] == 2
    assert len(LayerGraphSpace((3, 64, 64), 10).stem("relu")) == 6  # 64 -> 32 -> 16: two conv/norm/act stems
    for shape in ((1, 8, 8), (1, 40)):
        on = LayerGraphSpace(shape, 10)
        off = LayerGraphSpace(shape, 10, LayerSpaceOptions(stem=False))
        assert [on.sample(np.random.default_rng(s)) for s in range(5)] == [off.sample(np.random.default_rng(s)) for s in range(5)]


def test_the_compute_cap_scales_with_the_input() -> None:
    config = build_config()
    assert compute_cap(config, LayerGraphSpace((1, 28, 28), 10)).limit == 20e6
    assert compute_cap(config, LayerGraphSpace((3, 224, 224), 10)).limit == pytest.approx(1.50528e9)
    assert compute_cap(build_config({"space": {"max_flops": None}}), LayerGraphSpace((1, 28, 28), 10)) is None
    assert compute_cap(build_config({"space": {"max_flops": 5e6}}), LayerGraphSpace((1, 28, 28), 10)).limit == 5e6


def test_the_capped_space_draws_only_candidates_under_the_cap(tmp_path) -> None:
    from nasforge.evaluate.cost import count_flops

    x = np.random.default_rng(0).normal(size=(60, 1, 28, 28)).astype(np.float32)
    np.savez(tmp_path / "big.npz", x=x, y=np.arange(60) % 3)
    study = build_study(build_config(dataset=str(tmp_path / "big.npz"), trials=1, out=str(tmp_path / "r"), progress=False))
    try:
        rng = np.random.default_rng(1)
        import torch

        for _ in range(5):
            genome = study.strategy.space.sample(rng)
            assert count_flops(study.space.build(genome), torch.zeros(1, 1, 28, 28)) <= 20e6
    finally:
        study.rundir.release()


def test_classes_missing_from_training_are_warned_about(tmp_path, capsys) -> None:
    x = np.random.default_rng(0).normal(size=(30, 4))
    np.savez(tmp_path / "one.npz", x=x, y=np.arange(30))  # one sample per class
    data = nasforge.data.load_dataset(str(tmp_path / "one.npz"))
    problems = split_warnings(data)
    assert len(problems) == 2 and "never occur in training" in problems[0] and "100%" in problems[0]
    assert split_warnings(nasforge.data.load_dataset("digits")) == []
    code = main(["search", "--dataset", str(tmp_path / "one.npz"), "--trials", "1", "--epochs", "1", "--max-blocks", "2",
                 "--progress", "false", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 0 and err.count("warning: ") == 2 and "Traceback" not in err


@pytest.mark.slow
def test_digits_with_the_defaults_is_accurate(tmp_path) -> None:
    study = nasforge.search(dataset="digits", trials=8, epochs=3, out=str(tmp_path / "r"), progress=False)
    assert study.final["test"]["accuracy"] >= 0.90  # batch 128 (the old default) gave 55%
