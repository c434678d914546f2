"""Real limits on a candidate: a memory guard decided before it is built, and a trial timeout that
stops it wherever it is (inside one long batch, inside a cost measurement). Both are failed trials
with their reason, and the search goes on."""

from __future__ import annotations

import torch

import nasforge
from nasforge.evaluate.footprint import BYTES_PER_PARAM, check, estimate
from nasforge.space import LayerGraphSpace, LayerSpaceOptions
from nasforge.space.layers import Layer, LayerGenome


def _conv_net(channels: int, kernel: int = 3, blocks: int = 2) -> LayerGenome:
    return LayerGenome(tuple(Layer.of("conv", kernel=kernel, channels=channels, stride=1) for _ in range(blocks)))


def test_the_footprint_is_known_without_allocating_it() -> None:
    space = LayerGraphSpace((1, 28, 28), 10, LayerSpaceOptions(channels=(4096,)))
    genome = _conv_net(4096, blocks=3)
    footprint = estimate(space, genome, torch.zeros(2, 1, 28, 28), 128)
    small = LayerGraphSpace((1, 28, 28), 10, LayerSpaceOptions(channels=(8,)))
    params = sum(p.numel() for p in small.build(_conv_net(8, blocks=3)).parameters())
    assert footprint.params > 300_000_000 > 1000 * params  # ~1.2 GB of float32 never allocated here
    assert footprint.activations == 3 * 4096 * 28 * 28 + 4096 + 10 + 4096  # three conv maps, pooled, logits, flatten
    assert footprint.bytes > BYTES_PER_PARAM * footprint.params
    _, why = check(space, genome, torch.zeros(2, 1, 28, 28), 128, limit=1e9)
    assert why is not None and "too large to train" in why and "not built" in why
    assert check(small, _conv_net(8), torch.zeros(2, 1, 28, 28), 128, limit=1e9)[1] is None


def test_an_oversized_candidate_fails_unbuilt_and_the_search_goes_on(tmp_path) -> None:
    config = {"dataset": "digits", "strategy": "random", "space": {"channels": [8, 2048], "max_blocks": 2, "max_flops": None},
              "training": {"epochs": 1, "max_memory_gb": 0.05}, "budget": {"trials": 6}, "seed": 3,
              "out": str(tmp_path / "r"), "progress": False}
    study = nasforge.search(config)
    errors = [t.error for t in study.trials if t.status == "failed"]
    assert len(study.trials) == 6 and errors and all("too large to train" in e for e in errors)
    assert any(t.status == "complete" for t in study.trials) and study.final is not None


def test_a_trial_timeout_stops_a_candidate_inside_one_long_batch(tmp_path) -> None:
    # One batch of this net (the whole training split, four 512-channel 7x7 convolutions at full
    # resolution: ~16 TFLOP) takes minutes on a CPU core, whatever else the machine does; the limit
    # checked between batches never comes. The genome is given, not sampled, so that stays true.
    genome = [{"kind": "conv", "kernel": 7, "channels": 512, "stride": 1} for _ in range(4)]
    config = {"dataset": "digits", "strategy": "random", "budget": {"trials": 1}, "seed": 0, "progress": False,
              "initial_genomes": [genome], "space": {"channels": [512], "kernels": [7], "max_flops": None},
              "training": {"epochs": 1, "batch_size": 1024, "trial_timeout": 0.5, "max_memory_gb": 100},
              "out": str(tmp_path / "batch")}
    study = nasforge.search(config)
    [trial] = study.trials
    assert trial.status == "failed" and "stopped wherever it was" in trial.error, trial.error
    assert study.final is None and study.stop_reason == "trials"


def test_a_trial_timeout_stops_a_candidate_inside_its_cost_measurement(tmp_path) -> None:
    config = {"dataset": "digits", "strategy": "random", "budget": {"trials": 2}, "seed": 0, "progress": False,
              "space": {"max_blocks": 2}, "costs": {"batch_size": 65536, "repeats": 10000},
              "training": {"epochs": 1, "trial_timeout": 0.5}, "out": str(tmp_path / "costs")}
    study = nasforge.search(config)
    assert [t.status for t in study.trials] == ["failed", "failed"]  # both, one after the other: the search went on
    assert all("stopped wherever it was" in t.error for t in study.trials)
