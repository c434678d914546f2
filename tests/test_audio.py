"""Audio: WAV reading, the log-mel spectrogram against a numpy reference, FSDD splits, and every
genome of the layer space (multiscale blocks included) on real spectrograms."""

from __future__ import annotations

import wave

import numpy as np
import pytest
import torch

from conftest import shared_data
from nasforge.data import load_dataset
from nasforge.data.audio import MelOptions, SpectrogramAugment, fit_length, gain_normalize, load_fsdd, log_mel, read_wav
from nasforge.data.datasets import SourceOptions
from nasforge.errors import DataError
from nasforge.evaluate.trainer import TrainingOptions, train
from nasforge.space import Layer, LayerGenome, LayerGraphSpace, plan_to_source

FSDD = shared_data() / "fsdd" / "recordings"
needs_fsdd = pytest.mark.skipif(not FSDD.is_dir(), reason=f"FSDD recordings not found at {FSDD} (set NASFORGE_DATA)")


def _numpy_log_mel(x: np.ndarray, o: MelOptions) -> np.ndarray:
    """Independent reference: reflect-padded frames, periodic Hann, rfft power, HTK triangles."""
    pad = o.n_fft // 2
    xp = np.pad(x.astype(np.float64), pad, mode="reflect")
    n_frames = 1 + (len(xp) - o.n_fft) // o.hop
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(o.n_fft) / o.n_fft)
    frames = np.stack([xp[i * o.hop : i * o.hop + o.n_fft] * window for i in range(n_frames)])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # frames x bins
    f_max = o.sample_rate / 2
    mels = np.linspace(0, 2595 * np.log10(1 + f_max / 700), o.n_mels + 2)
    hz = 700 * (10 ** (mels / 2595) - 1)
    freqs = np.arange(o.n_fft // 2 + 1) * o.sample_rate / o.n_fft
    fb = np.zeros((len(freqs), o.n_mels))
    for m in range(o.n_mels):
        lo, c, hi = hz[m], hz[m + 1], hz[m + 2]
        for k, f in enumerate(freqs):
            if lo < f <= c:
                fb[k, m] = (f - lo) / (c - lo)
            elif c < f < hi:
                fb[k, m] = (hi - f) / (hi - c)
    return np.log(power @ fb + o.floor).T  # n_mels x frames


def test_log_mel_matches_numpy_reference_on_a_tone() -> None:
    o = MelOptions()
    t = np.arange(4000) / o.sample_rate
    tone = (0.5 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
    ours = log_mel(torch.from_numpy(tone), o).numpy()
    ref = _numpy_log_mel(tone, o)
    assert ours.shape == ref.shape == (o.n_mels, 4000 // o.hop + 1)
    # float32 STFT against float64 numpy: compare where there is energy (log of ~0 is all noise).
    strong = ref > ref.max() - 12
    assert strong.sum() > 100
    np.testing.assert_allclose(ours[strong], ref[strong], atol=2e-3)
    # The loudest band is the one whose centre is nearest 1 kHz.
    centres = 700 * (10 ** (np.linspace(0, 2595 * np.log10(1 + 4000 / 700), o.n_mels + 2)[1:-1] / 2595) - 1)
    assert ours.mean(axis=1).argmax() == np.abs(centres - 1000).argmin()
    # A batch gives each clip's own spectrogram.
    batch = log_mel(torch.from_numpy(np.stack([tone, tone[::-1].copy()])), o)
    np.testing.assert_allclose(batch[0].numpy(), ours, atol=1e-5)


def test_gain_normalize_removes_the_recording_level() -> None:
    o = MelOptions(floor=1e-12)  # exact up to the absolute floor, which the quiet copy would reach
    rng = np.random.default_rng(0)
    t = np.arange(8000) / o.sample_rate
    clip = (np.sin(2 * np.pi * 440 * t) * np.exp(-((t - 0.5) ** 2) / 0.02) + 0.001 * rng.standard_normal(8000)).astype(np.float32)
    loud, quiet = (log_mel(torch.from_numpy(clip * g), o) for g in (0.5, 0.02))
    assert (loud - quiet).abs().max() > 5  # raw log power differs by the gain (ln 25 = 3.2 nats and more at the floor)
    a, b = gain_normalize(loud, 35.0), gain_normalize(quiet, 35.0)
    torch.testing.assert_close(a, b, atol=1e-3, rtol=0)
    assert float(a.max()) == 0.0 and float(a.min()) == pytest.approx(-35 / (10 * np.log10(np.e)))


def test_spectrogram_augment() -> None:
    x = torch.randn(6, 1, 40, 51)
    g = torch.Generator().manual_seed(0)
    # Zero ranges are the identity (the resampling grid lands on the pixel centres).
    torch.testing.assert_close(SpectrogramAugment(0.0, 0.0, 0.0)(x, g), x, atol=1e-4, rtol=0)
    aug = SpectrogramAugment(shift=0.1, stretch=0.1, warp=0.1)
    a = aug(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and not torch.allclose(a, x)
    torch.testing.assert_close(a, aug(x, torch.Generator().manual_seed(1)))  # seeded: reproducible
    # A pure time shift moves a click along the frames axis, per sample, and never along the bands.
    click = torch.zeros(4, 40, 51)
    click[:, 10, 25] = 1.0
    shifted = SpectrogramAugment(shift=0.1, stretch=0.0, warp=0.0)(click, torch.Generator().manual_seed(2))
    assert shifted.shape == click.shape  # 1-D layout: bands as channels
    assert torch.all(shifted.sum(dim=2).argmax(dim=1) == 10)
    assert shifted.sum(dim=1).argmax(dim=1).sub(25).abs().max() <= 6


def test_trainer_applies_the_augment_to_training_batches_only() -> None:
    x, y = torch.randn(40, 1, 6, 8), torch.arange(40) % 2
    seen: list[int] = []

    def identity(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        seen.append(len(batch))
        torch.rand(3, generator=generator)  # draws from its own generator: batch order unchanged
        return batch

    def model() -> torch.nn.Module:
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 2))

    options = TrainingOptions(epochs=2, batch_size=16)
    plain, hooked = model(), model()
    train(plain, x, y, options, seed=3, validation=(x, y))
    train(hooked, x, y, options, seed=3, validation=(x, y), augment=identity)
    assert seen == [16, 16, 8] * 2
    for p, q in zip(plain.parameters(), hooked.parameters()):
        torch.testing.assert_close(p, q)


def test_read_wav_and_fit_length(tmp_path) -> None:
    samples = (np.sin(np.arange(800) / 5) * 20000).astype("<i2")
    path = tmp_path / "3_alice_0.wav"
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(8000)
        f.writeframes(samples.tobytes())
    x, rate = read_wav(path)
    assert rate == 8000 and x.dtype == np.float32
    np.testing.assert_allclose(x, samples / 32768.0, atol=1e-6)
    assert fit_length(x, 1000).shape == (1000,) and fit_length(x, 1000)[100:900].tolist() == x.tolist()
    assert fit_length(x, 500).tolist() == x[150:650].tolist()
    (tmp_path / "9_bob_1.wav").write_bytes(b"not a wav")
    with pytest.raises(DataError, match="9_bob_1.wav"):
        load_fsdd(tmp_path, cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match="not found"):
        load_fsdd(tmp_path / "missing")


@needs_fsdd
def test_fsdd_splits() -> None:
    up = load_fsdd(FSDD)
    assert up["x"].shape[1:] == (40, 51) and len(up["y_test"]) == 300 and len(up["y"]) == 2700
    theo = load_fsdd(FSDD, split="speaker", held_out_speaker="theo")
    assert len(theo["y_test"]) == 500 and np.bincount(theo["y_test"]).tolist() == [50] * 10
    with pytest.raises(DataError, match="speakers"):
        load_fsdd(FSDD, split="speaker", held_out_speaker="nobody")
    # Validation on a training speaker never trained on: "auto" is the next speaker after the held-out one.
    val = load_fsdd(FSDD, split="speaker", held_out_speaker="theo", val_speaker="auto")
    assert (len(val["y"]), len(val["y_val"]), len(val["y_test"])) == (2000, 500, 500)
    np.testing.assert_array_equal(val["x_val"], load_fsdd(FSDD, split="speaker", held_out_speaker="yweweler")["x_test"])
    with pytest.raises(DataError, match="training speakers"):
        load_fsdd(FSDD, split="speaker", held_out_speaker="theo", val_speaker="theo")
    # Gain-normalised features: every clip peaks at 0 and is clipped top_db below.
    assert np.allclose(up["x"].max(axis=(1, 2)), 0) and up["x"].min() >= -35 / (10 * np.log10(np.e)) - 1e-5


def _check_space(space: LayerGraphSpace, batch: torch.Tensor, seed: int, n: int) -> set[str]:
    rng = np.random.default_rng(seed)
    kinds: set[str] = set()
    for _ in range(n):
        g = space.sample(rng)
        for _ in range(3):
            for genome in (g, space.crossover(g, space.sample(rng), rng)):
                kinds |= {layer.kind for layer in genome.layers}
                model = space.build(genome).eval()
                with torch.no_grad():
                    out = model(batch)
                assert out.shape == (len(batch), 10) and torch.isfinite(out).all()
            g, _ = space.mutate(g, rng)
    return kinds


@needs_fsdd
@pytest.mark.parametrize("layout", ["nhw", "ncl"])
def test_every_audio_genome_runs_on_real_spectrograms(layout: str) -> None:
    torch.manual_seed(0)
    data = load_dataset(f"fsdd:{FSDD}", layout=layout)
    assert data.input_shape == ((1, 40, 51) if layout == "nhw" else (40, 51))
    assert isinstance(data.augment, SpectrogramAugment)
    assert data.augment(data.x_train[:3], torch.Generator().manual_seed(0)).shape == data.x_train[:3].shape
    plain = load_dataset(f"fsdd:{FSDD}", layout=layout, options=SourceOptions("speaker", "theo", val_speaker=None, augment=False))
    assert plain.augment is None and len(plain.y_test) == 500 and len(plain.y_val) == 500  # a random 20% of 2,500
    space = LayerGraphSpace(data.input_shape, data.num_classes)
    kinds = _check_space(space, data.x_train[:3], seed=1, n=12)
    assert "multiscale" in kinds


def test_multiscale_block_exports_as_source() -> None:
    space = LayerGraphSpace((2, 30), 4)
    genome = LayerGenome((Layer.of("multiscale", kernels="1-3-5", channels=8), Layer.of("act", fn="relu"),
                          Layer.of("conv", kernel=3, channels=8, stride=2), Layer.of("skip", span=2)))
    assert space.problems(genome) == [] and "ms[1-3-5]x8" in space.describe(genome)
    torch.manual_seed(0)
    model = space.build(genome).eval()
    assert model.l0_k5.out_channels == 8 and model.l2.in_channels == 24  # three branches of 8, concatenated
    namespace: dict = {}
    exec(plan_to_source(model.plan), namespace)
    standalone = namespace["FoundNet"]().eval()
    standalone.load_state_dict(model.state_dict())
    x = torch.randn(5, 2, 30)
    with torch.no_grad():
        torch.testing.assert_close(standalone(x), model(x))
    with pytest.raises(Exception, match="kernels"):
        space.from_json([{"kind": "multiscale", "channels": 8}])


def test_band_normalize_and_its_option() -> None:
    x = torch.randn(3, 40, 51) * 2 + torch.linspace(-5, 5, 40)[:, None]  # a fixed tilt across the bands
    from nasforge.data.audio import band_normalize

    m = band_normalize(x, "mean")
    torch.testing.assert_close(m.mean(dim=-1), torch.zeros(3, 40), atol=1e-5, rtol=0)
    torch.testing.assert_close(m + x.mean(dim=-1, keepdim=True), x)
    mv = band_normalize(x, "meanvar")
    torch.testing.assert_close(mv.std(dim=-1), torch.ones(3, 40), atol=1e-3, rtol=0)
    assert torch.isfinite(band_normalize(torch.zeros(2, 4, 5), "meanvar")).all()  # constant bands stay finite
    with pytest.raises(DataError, match="band_normalize"):
        band_normalize(x, "cmvn")
    with pytest.raises(DataError, match="band_norm"):
        MelOptions(band_norm="cmvn")
    assert MelOptions(band_norm="meanvar").band_norm == "meanvar"


@needs_fsdd
def test_fsdd_band_norm_reaches_the_dataset() -> None:
    from nasforge.data.datasets import fsdd_arrays

    plain = fsdd_arrays(str(FSDD), SourceOptions("upstream"))
    normed = fsdd_arrays(str(FSDD), SourceOptions("upstream", band_norm="mean"))
    assert np.abs(plain["x"].mean(axis=-1)).max() > 1.0  # levelled log power: bands sit well below 0
    np.testing.assert_allclose(normed["x"].mean(axis=-1), 0.0, atol=1e-4)  # every band of every recording
    np.testing.assert_allclose(normed["x"], plain["x"] - plain["x"].mean(axis=-1, keepdims=True), atol=1e-4)


def test_spectrogram_augment_masks() -> None:
    x = torch.randn(16, 1, 40, 51) + 3.0
    aug = SpectrogramAugment(shift=0.0, stretch=0.0, warp=0.0, time_mask=0.2, freq_mask=0.2)
    a = aug(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, aug(x, torch.Generator().manual_seed(0)))  # seeded: reproducible
    plain = SpectrogramAugment(shift=0.0, stretch=0.0, warp=0.0)(x, torch.Generator().manual_seed(0))
    changed = a != plain
    # Masked cells are whole frames (time) or whole bands (frequency), at most 20% of the axis each.
    frames = changed.all(dim=2).squeeze(1)  # n x frames: fully masked frames
    bands = changed.all(dim=3).squeeze(1)  # n x bands: fully masked bands
    assert frames.sum(dim=1).max() <= int(0.2 * 51) and bands.sum(dim=1).max() <= int(0.2 * 40)
    assert frames.any() and bands.any()
    assert torch.equal(changed, frames[:, None, None, :] | bands[:, None, :, None])
    # The fill is the sample's mean; the 1-D layout (bands as channels) is masked the same way.
    assert a.shape == x.shape and abs(float(a[changed].mean()) - 3.0) < 0.2
    assert aug(x[:, 0], torch.Generator().manual_seed(0)).shape == x[:, 0].shape
    with pytest.raises(DataError, match="time_mask"):
        SpectrogramAugment(time_mask=1.0)
    with pytest.raises(DataError, match="shift"):
        SpectrogramAugment(shift=-0.1)


@needs_fsdd
def test_fsdd_groups_give_one_cross_validation_fold_per_speaker(tmp_path) -> None:
    from nasforge.api import build_study
    from nasforge.config import build_config
    from nasforge.errors import ConfigError
    from nasforge.evaluate.crossval import extra_folds

    data = load_dataset(f"fsdd:{FSDD}", options=SourceOptions("speaker", "theo", val_speaker="auto"))
    assert sorted(set(data.groups.tolist())) == ["george", "jackson", "lucas", "nicolas"]  # not theo (test), yweweler (val)
    assert data.summary()["groups"] == ["george", "jackson", "lucas", "nicolas"]
    held_out = [sorted(set(data.groups[held.numpy()].tolist())) for _, held in extra_folds(data, 5, seed=0)]
    assert sorted(held_out) == [["george"], ["jackson"], ["lucas"], ["nicolas"]]
    # A random validation split mixes every speaker into it: no groups, so folds are stratified instead.
    assert load_dataset(f"fsdd:{FSDD}", options=SourceOptions("speaker", "theo", val_speaker=None)).groups is None
    # Six folds would need five training speakers besides the validation one: refused before any run is made.
    config = build_config({"dataset": {"name": f"fsdd:{FSDD}", "split": "speaker"}, "training": {"cv_folds": 6}},
                          out=str(tmp_path / "run"), progress=False)
    with pytest.raises(ConfigError, match=r"training.cv_folds: 6 folds need 5 groups .*has 4"):
        build_study(config)
    assert not (tmp_path / "run").exists()
