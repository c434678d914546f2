"""Test-time views (`dataset.test_views`): the returned model averages its predictions over shifted and
frequency-warped copies of each spectrogram; the views survive the store, best_model() and export."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from conftest import shared_data
from nasforge.data.audio import SpectrogramViews
from nasforge.data.datasets import make_views
from nasforge.ensemble import Ensemble, combine
from nasforge.errors import ConfigError, DataError

FSDD = shared_data() / "fsdd" / "recordings"
needs_fsdd = pytest.mark.skipif(not FSDD.is_dir(), reason=f"FSDD recordings not found at {FSDD} (set NASFORGE_DATA)")


def test_views_are_the_input_shifted_and_warped() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 1, 40, 51)
    views = SpectrogramViews(shift=1 / 51, warp=0.05)  # a shift of exactly one frame
    out = views(x)
    assert out.shape == (9, 3, 1, 40, 51)
    # (shift, warp) run over (-s, 0, +s) x (-w, 0, +w): view 4 is the input itself.
    assert torch.allclose(out[4], x, atol=1e-4)
    # +shift samples one frame later: frame t of the view is frame t + 1 of the input (edges repeat).
    assert torch.allclose(out[7][..., :-1], x[..., 1:], atol=1e-4)
    assert torch.allclose(out[1][..., 1:], x[..., :-1], atol=1e-4)
    # A frequency warp keeps 0 Hz in place: the lowest band moves by a fortieth of a band, band 20 by one.
    moved = (out[5] - x).abs().mean(dim=(0, 1, 3))
    assert moved[0] < 0.1 * moved[20]
    # The 1-D layout (bands as channels) gets the same views.
    flat = views(x[:, 0])
    assert flat.shape == (9, 3, 40, 51) and torch.allclose(flat, out[:, :, 0], atol=1e-5)
    assert list(views.state_dict()) == []  # nothing learnt, nothing in a weights file
    assert make_views(views.spec()).spec() == views.spec()
    with pytest.raises(DataError, match="shift must be in"):
        SpectrogramViews(shift=1.5)
    with pytest.raises(DataError, match="unknown test-time views"):
        make_views({"kind": "pictures"})


def test_ensemble_averages_probabilities_over_members_and_views() -> None:
    torch.manual_seed(0)
    members = [nn.Sequential(nn.Flatten(), nn.Linear(40 * 51, 10)) for _ in range(2)]
    views = SpectrogramViews()
    model = combine(members, views)
    assert isinstance(model, Ensemble)
    x = torch.randn(5, 1, 40, 51)
    stacked = views(x)
    expected = torch.stack([m(v).softmax(-1) for m in members for v in stacked]).mean(0)
    assert torch.allclose(model(x).exp(), expected, atol=1e-5)
    # One network with views is an ensemble of one; without views it stays the bare network.
    assert isinstance(combine(members[:1], views), Ensemble)
    assert combine(members[:1]) is members[0]
    single = combine(members[:1], views)
    assert torch.allclose(single(x).exp(), torch.stack([members[0](v).softmax(-1) for v in stacked]).mean(0), atol=1e-5)
    assert math.isclose(float(single(x).detach().exp().sum(-1).mean()), 1.0, rel_tol=1e-5)


def test_test_views_on_a_dataset_without_them_is_a_config_error(tmp_path) -> None:
    from nasforge.api import build_study
    from nasforge.config import build_config

    config = build_config({"dataset": {"name": "digits", "test_views": True}}, out=str(tmp_path / "run"), progress=False)
    with pytest.raises(ConfigError, match=r"dataset.test_views: 'digits' has no test-time views"):
        build_study(config)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@needs_fsdd
def test_fsdd_search_returns_a_model_with_views_that_loads_and_exports(tmp_path) -> None:
    from nasforge import search
    from nasforge.export import check_export, export_trial, load, real_batch

    config = {
        "dataset": {"name": f"fsdd:{FSDD}", "split": "speaker", "test_views": True, "cache_dir": str(tmp_path / "cache")},
        "space": {"name": "layers", "min_blocks": 2, "max_blocks": 3, "channels": [8], "kernels": [3], "dense_units": [16]},
        "strategy": {"name": "random"},
        "training": {"epochs": 1, "final_epochs": 1, "final_seeds": 2},
        "budget": {"trials": 2},
        "out": str(tmp_path / "run"),
        "progress": False,
    }
    study = search(config)
    final = study.final
    assert final["views"] == {"kind": "spectrogram", "shift": 0.05, "warp": 0.05}
    assert "test-time views" in final["source"]
    model = study.best_model()
    assert isinstance(model, Ensemble) and model.views is not None and len(model.members) == 2
    # The reported test accuracy is the accuracy of the model best_model() rebuilds, views included.
    data = study.evaluator.data
    with torch.no_grad():
        accuracy = float((model(data.x_test).argmax(-1) == data.y_test).float().mean())
    assert accuracy == pytest.approx(final["test"]["accuracy"], abs=1e-6)
    # Without the views the same weights give other predictions: the views are part of the model.
    bare = combine(list(model.members))
    with torch.no_grad():
        assert not torch.allclose(bare(data.x_test[:32]), model(data.x_test[:32]), atol=1e-4)
    out = export_trial(tmp_path / "run", tmp_path / "export", format="torchscript")
    loaded = load(out)
    batch = real_batch(tmp_path / "run", n=16)
    with torch.no_grad():
        assert torch.allclose(loaded(batch), model(batch), atol=1e-5)
    assert check_export(out, batch)["torchscript"] < 1e-4


@pytest.mark.slow
def test_a_model_with_views_exports_to_onnx_with_a_dynamic_batch(tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime", reason="the 'export' extra is not installed")
    from nasforge.export import _to_onnx

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    model = combine([net], SpectrogramViews()).eval()
    _to_onnx(model, torch.randn(2, 1, 40, 51), tmp_path / "model.onnx")
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(7, 1, 40, 51)  # another batch size than the one it was exported with
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        assert abs(torch.from_numpy(got) - model(x)).max() < 1e-4
