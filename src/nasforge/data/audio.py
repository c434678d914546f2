"""Spoken-digit audio (FSDD) as log-mel spectrograms, computed with PyTorch alone and cached.

WAV files are read with the standard library's `wave`; the spectrogram is `torch.stft` power
through a triangular HTK-mel filterbank written here (no torchaudio). Features are cached per
(recordings, parameters) as one .npz in a user cache directory, so a search re-reads them in
milliseconds; a changed, added or removed recording gives a different cache key.

Speakers were recorded at very different levels (theo's peaks are ~20 dB below george's) and over
different noise floors, so each spectrogram is made gain-invariant: its maximum is subtracted and
everything more than `top_db` below it is clipped (librosa's `power_to_db(ref=max, top_db=...)`).
Measured on held-out speaker theo with the hand 2-D CNN (8 epochs): 46-48% without it, 74% with it.

Splits: "upstream" (takes 0-4 of every speaker and digit are the test split, the FSDD convention)
and "speaker" (every recording of one held-out speaker is the test split).

`SpectrogramAugment` is the per-batch training transform the dataset hands the trainer: random
time shift, time stretch (speaking rate) and frequency warp (vocal-tract length), one affine resampling,
and optional SpecAugment time / frequency masks.
`SpectrogramViews` is the test-time counterpart (`dataset.test_views`): fixed shifted and warped copies
of each input whose predictions the returned model averages.

Single runs on theo cannot rank these: one speaker and one seed move by several points. Measured instead
on the five other speakers, each held out in turn from a model trained on the remaining four, theo never
seen (`benchmarks/fsdd_splits.py --exclude-speaker theo`; hand 5-conv CNN pooled four times, 15 epochs,
seeds 0 / 1 / 2): defaults 84.7 / 86.1 / 88.7% (mean over the five); per-band mean normalisation after the
peak levelling (`band_norm="mean"`) with label smoothing 0.1 (a training option) 90.1 / 88.9 / 91.0%, so
examples/fsdd.yaml uses both (each alone: 88.5% over the three seeds). No gain (seed 0): 30 epochs, mixup 0.4,
an exponential moving average of the weights, cepstral liftering to 20 coefficients, 24 mel bands,
frequency warp 0.1, a random extra floor of up to 10 dB. Earlier single runs on theo alone: CMVN
(`"meanvar"`) 75.6%; masks of up to 15% of frames and bands 78.0% (small CNN), 10%: 93.6% (5-conv);
top_db 25 or 50: 71.8% / 68.0%. What mattered most is the network: pooling four times, so the last
convolutions see the whole word before the global pooling.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import wave
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError

FILE_PATTERN = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")
SPLITS = ("upstream", "speaker")
BAND_NORMS = (None, "mean", "meanvar")


@dataclass(frozen=True)
class MelOptions:
    sample_rate: int = 8000
    n_fft: int = 256  # 32 ms windows at 8 kHz
    hop: int = 160  # 20 ms (10 ms hops cost twice as much and scored no better on held-out speakers)
    n_mels: int = 40
    f_min: float = 0.0
    f_max: float | None = None  # Nyquist
    # Every clip is centred and padded / cropped to this many samples (1 s covers 99% of FSDD).
    samples: int = 8000
    floor: float = 1e-5  # added before the log, so silence stays finite
    # Features only (fsdd_features, not log_mel): subtract each clip's maximum and clip this many
    # dB below it, so level and noise floor no longer tell speakers apart. None keeps raw log power.
    top_db: float | None = 35.0
    # Features only: per-utterance normalisation of every mel band over the clip's frames after the
    # peak levelling. "mean" subtracts each band's mean (cepstral mean normalisation: removes the
    # speaker's and microphone's fixed spectral tilt); "meanvar" also divides by the band's standard
    # deviation (CMVN). None leaves the bands as they are.
    band_norm: str | None = None

    def __post_init__(self) -> None:
        if self.band_norm not in BAND_NORMS:
            raise DataError(f"fsdd: unknown band_norm {self.band_norm!r}; choose from "
                            f"{', '.join(repr(b) for b in BAND_NORMS)}")


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_fft: int, sample_rate: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None) -> torch.Tensor:
    """(n_fft // 2 + 1) x n_mels triangular filters, equally spaced on the HTK mel scale, unnormalised."""
    f_max = sample_rate / 2 if f_max is None else f_max
    bins = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins[:, None] - lower) / (centre - lower)
    falling = (upper - bins[:, None]) / (upper - centre)
    return torch.from_numpy(np.maximum(0.0, np.minimum(rising, falling))).float()


def log_mel(waveform: torch.Tensor, options: MelOptions = MelOptions()) -> torch.Tensor:
    """log(mel power + floor) of (..., samples) audio: (..., n_mels, frames), frames centred on hops."""
    window = torch.hann_window(options.n_fft, periodic=True, dtype=waveform.dtype)
    flat = waveform.reshape(-1, waveform.shape[-1])
    spec = torch.stft(flat, options.n_fft, hop_length=options.hop, win_length=options.n_fft, window=window,
                      center=True, pad_mode="reflect", return_complex=True)
    power = spec.real**2 + spec.imag**2  # (batch, freq, frames)
    fb = mel_filterbank(options.n_fft, options.sample_rate, options.n_mels, options.f_min, options.f_max).to(waveform.dtype)
    mel = torch.einsum("bft,fm->bmt", power, fb)
    return torch.log(mel + options.floor).reshape(*waveform.shape[:-1], options.n_mels, -1)


def gain_normalize(logmel: torch.Tensor, top_db: float) -> torch.Tensor:
    """Each (..., n_mels, frames) log-mel clip relative to its own maximum, clipped `top_db` below it."""
    peak = logmel.amax(dim=(-2, -1), keepdim=True)
    return torch.clamp(logmel - peak, min=-top_db / (10.0 * np.log10(np.e)))


def band_normalize(logmel: torch.Tensor, mode: str, eps: float = 1e-3) -> torch.Tensor:
    """Each mel band of (..., n_mels, frames) clips less its mean over the frames ("mean") and also
    divided by its standard deviation ("meanvar"; eps keeps constant bands finite)."""
    if mode not in ("mean", "meanvar"):
        raise DataError(f"band_normalize: unknown mode {mode!r}; choose 'mean' or 'meanvar'")
    out = logmel - logmel.mean(dim=-1, keepdim=True)
    if mode == "meanvar":
        out = out / (logmel.std(dim=-1, keepdim=True) + eps)
    return out


@dataclass(frozen=True)
class SpectrogramAugment:
    """Random time shift, time stretch and frequency warp of a batch of spectrograms, drawn per
    sample and applied as one bilinear affine resampling (edges repeat the border, which after
    `gain_normalize` is the clipped floor in time). A training-only transform: (x, generator) -> x.

    x is N x 1 x n_mels x frames (2-D layout) or N x n_mels x frames (1-D layout, bands as channels).
    `shift` is the largest shift as a fraction of the clip, `stretch` and `warp` the largest relative
    change of the time and frequency scale (the frequency warp keeps 0 Hz in place).
    `time_mask` and `freq_mask` (SpecAugment) are the widest masked stretch of frames and of bands,
    as a fraction of the axis: one stretch of each, of random width and place, per sample, set to
    that sample's mean."""

    shift: float = 0.1
    stretch: float = 0.1
    warp: float = 0.0
    time_mask: float = 0.0
    freq_mask: float = 0.0

    def __post_init__(self) -> None:
        for name in ("shift", "stretch", "warp", "time_mask", "freq_mask"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise DataError(f"SpectrogramAugment: {name} must be in [0, 1), got {value!r}")

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        flat = x.dim() == 3
        images = x.unsqueeze(1) if flat else x
        n = images.shape[0]

        def uniform(scale: float) -> torch.Tensor:
            return (torch.rand(n, generator=generator) * 2 - 1) * scale

        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = 1 + uniform(self.stretch)  # time scale (grid x is the frames axis)
        theta[:, 0, 2] = 2 * uniform(self.shift)  # the grid spans [-1, 1]: a fraction f of it is 2f
        sy = 1 + uniform(self.warp)
        theta[:, 1, 1] = sy
        theta[:, 1, 2] = sy - 1  # keeps the lowest band (grid y = -1) fixed
        theta = theta.to(images.device, images.dtype)
        grid = torch.nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
        out = torch.nn.functional.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
        if self.time_mask > 0 or self.freq_mask > 0:
            bands, frames = out.shape[-2:]
            keep = torch.ones(n, 1, bands, frames, dtype=torch.bool)
            for size, axis in ((frames, -1), (bands, -2)):
                fraction = self.time_mask if axis == -1 else self.freq_mask
                if fraction <= 0:
                    continue
                widest = int(fraction * size)
                width = (torch.rand(n, generator=generator) * (widest + 1)).long().clamp(max=widest)  # 0 .. widest
                start = (torch.rand(n, generator=generator) * (size - width + 1)).long()
                pos = torch.arange(size)
                hit = (pos >= start[:, None]) & (pos < (start + width)[:, None])  # n x size
                keep &= ~(hit[:, None, None, :] if axis == -1 else hit[:, None, :, None])
            keep = keep.to(out.device)
            fill = out.mean(dim=(1, 2, 3), keepdim=True)
            out = torch.where(keep, out, fill)
        return out.squeeze(1) if flat else out


class SpectrogramViews(torch.nn.Module):
    """Test-time augmentation: fixed shifted and frequency-warped copies of each input spectrogram.

    forward(x) returns a (views, *x.shape) stack: every combination of a time shift of -shift, 0,
    +shift (fraction of the clip) and a frequency warp of -warp, 0, +warp (relative change of the
    frequency scale, 0 Hz kept), the unchanged input among them, resampled as `SpectrogramAugment`
    does. The returned model averages its predictions over them (`ensemble.Ensemble`), so a voice whose
    formants sit a few percent off the training voices' is also seen nearer to them.
    Measured on the five non-test speakers, each held out from the hand deep CNN trained on the other four
    (band_norm mean, label smoothing 0.1, 15 epochs, seeds 0-2; theo never used): single networks 90.4 /
    88.9 / 91.6% -> 92.2 / 90.8 / 92.6% with these 9 views of +-5%; the three seeds averaged 92.1% -> 93.3%
    (every speaker up or level). Warps alone gave +1.1 points, shifts alone +0.4, +-10% -0.1, adding +-5%
    time stretch (27 views) nothing more; training with a random 5% warp as well did not help (91.7% with views).
    Nothing is learnt: the views are a buffer rebuilt from (shift, warp), which `spec()` records."""

    theta: torch.Tensor  # views x 2 x 3 affine matrices (a buffer)

    def __init__(self, shift: float = 0.05, warp: float = 0.05):
        super().__init__()
        for name, value in (("shift", shift), ("warp", warp)):
            if not 0.0 <= value < 1.0:
                raise DataError(f"SpectrogramViews: {name} must be in [0, 1), got {value!r}")
        self.shift, self.warp = float(shift), float(warp)
        steps = lambda v: (-v, 0.0, v) if v else (0.0,)  # noqa: E731
        thetas = []
        for dt in steps(self.shift):
            for dw in steps(self.warp):
                thetas.append([[1.0, 0.0, 2 * dt], [0.0, 1 + dw, dw]])
        # Not persistent: weights files keep only learnt tensors, and the views are rebuilt from spec().
        self.register_buffer("theta", torch.tensor(thetas), persistent=False)

    def spec(self) -> dict[str, float | str]:
        return {"kind": "spectrogram", "shift": self.shift, "warp": self.warp}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.dim() == 3
        images = x.unsqueeze(1) if flat else x
        n, views = images.shape[0], self.theta.shape[0]
        # One sampling grid per view, shared by the batch (also keeps ONNX's batch axis dynamic).
        grids = torch.nn.functional.affine_grid(self.theta.to(images.dtype), [views, *images.shape[1:]], align_corners=False)
        grid = grids.unsqueeze(1).expand(-1, n, -1, -1, -1).reshape(views * n, *grids.shape[1:])
        batch = images.unsqueeze(0).expand(views, -1, -1, -1, -1).reshape(views * n, *images.shape[1:])
        out = torch.nn.functional.grid_sample(batch, grid, mode="bilinear", padding_mode="border", align_corners=False)
        out = out.reshape(views, *images.shape)
        return out.squeeze(2) if flat else out


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples in [-1, 1] and the sample rate of a PCM WAV file."""
    try:
        with wave.open(str(path), "rb") as f:
            rate, width, channels, n = f.getframerate(), f.getsampwidth(), f.getnchannels(), f.getnframes()
            raw = f.readframes(n)
    except (wave.Error, EOFError) as exc:
        raise DataError(f"{path}: not a readable PCM WAV file ({exc})") from None
    if width == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        x = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif width == 4:
        x = np.frombuffer(raw, "<i4").astype(np.float32) / 2147483648.0
    else:
        raise DataError(f"{path}: {8 * width}-bit samples are not supported (8, 16 or 32-bit PCM)")
    return x.reshape(-1, channels).mean(axis=1), rate


def fit_length(x: np.ndarray, samples: int) -> np.ndarray:
    """Centre the clip in `samples` samples: zero-pad both sides, or crop the middle."""
    if len(x) >= samples:
        start = (len(x) - samples) // 2
        return x[start : start + samples]
    left = (samples - len(x)) // 2
    return np.pad(x, (left, samples - len(x) - left))


def default_cache_dir() -> Path:
    """$NASFORGE_CACHE, else $XDG_CACHE_HOME/nasforge, else ~/.cache/nasforge: never the repository."""
    if os.environ.get("NASFORGE_CACHE"):
        return Path(os.environ["NASFORGE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nasforge"


def _recordings(folder: Path) -> list[tuple[Path, int, str, int]]:
    if not folder.is_dir():
        raise DataError(f"FSDD recordings folder not found: {folder} (expected files like 0_george_0.wav)")
    found = []
    for path in sorted(folder.iterdir()):
        m = FILE_PATTERN.match(path.name)
        if m:
            found.append((path, int(m.group(1)), m.group(2), int(m.group(3))))
    if not found:
        raise DataError(f"{folder}: no FSDD recordings named DIGIT_SPEAKER_TAKE.wav")
    return found


def fsdd_features(folder: str | Path, options: MelOptions = MelOptions(), cache_dir: str | Path | None = None) -> dict[str, np.ndarray]:
    """Log-mel spectrograms of every recording (x: N x n_mels x frames) with digit, speaker and take."""
    folder = Path(folder).expanduser()
    files = _recordings(folder)
    identity = json.dumps([asdict(options), [(p.name, p.stat().st_size, int(p.stat().st_mtime)) for p, *_ in files]])
    key = hashlib.sha1(identity.encode()).hexdigest()[:16]
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    path = cache / f"fsdd-{key}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                return {k: f[k] for k in f.files}
        except (OSError, ValueError):
            pass  # a torn cache file (killed mid-write) is recomputed below
    waves = []
    for p, *_ in files:
        x, rate = read_wav(p)
        if rate != options.sample_rate:
            raise DataError(f"{p}: sample rate {rate} Hz, expected {options.sample_rate} Hz")
        waves.append(fit_length(x, options.samples))
    with torch.no_grad():
        feats = log_mel(torch.from_numpy(np.stack(waves)), options)
        if options.top_db is not None:
            feats = gain_normalize(feats, options.top_db)
        if options.band_norm is not None:
            feats = band_normalize(feats, options.band_norm)
    arrays: dict[str, np.ndarray] = {
        "x": feats.numpy().astype(np.float32),
        "digit": np.array([d for _, d, _, _ in files], dtype=np.int64),
        "speaker": np.array([s for _, _, s, _ in files]),
        "take": np.array([t for *_, t in files], dtype=np.int64),
    }
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
    # Named one by one: numpy's stubs would match a **dict against savez's allow_pickle flag.
    np.savez(tmp, x=arrays["x"], digit=arrays["digit"], speaker=arrays["speaker"], take=arrays["take"])
    tmp.replace(path)
    return arrays


def load_fsdd(folder: str | Path, split: str = "upstream", held_out_speaker: str = "theo", cache_dir: str | Path | None = None,
              options: MelOptions = MelOptions(), val_speaker: str | None = None) -> dict[str, np.ndarray]:
    """Train and test arrays (x: N x n_mels x frames, y: digit) of one FSDD split.

    With split "speaker" and a `val_speaker` (a training speaker, or "auto": the one after the held-out
    speaker in sorted order), that speaker's recordings are the validation split (x_val, y_val), so a
    search selects architectures for what the test measures: accuracy on a speaker never trained on;
    `groups` then gives the speaker of every training recording (for cross-validation by speaker)."""
    if split not in SPLITS:
        raise DataError(f"fsdd: unknown split {split!r}; choose from {', '.join(SPLITS)}")
    f = fsdd_features(folder, options, cache_dir)
    if split == "upstream":
        test = f["take"] <= 4
        return {"x": f["x"][~test], "y": f["digit"][~test], "x_test": f["x"][test], "y_test": f["digit"][test]}
    speakers = sorted(set(f["speaker"].tolist()))
    if held_out_speaker not in speakers:
        raise DataError(f"fsdd: no speaker {held_out_speaker!r} in {folder}; speakers: {', '.join(speakers)}")
    test = f["speaker"] == held_out_speaker
    out = {"x_test": f["x"][test], "y_test": f["digit"][test]}
    train = ~test
    if val_speaker is not None:
        if val_speaker == "auto":
            val_speaker = speakers[(speakers.index(held_out_speaker) + 1) % len(speakers)]
        if val_speaker == held_out_speaker or val_speaker not in speakers:
            raise DataError(f"fsdd: validation speaker {val_speaker!r} must be one of the training speakers "
                            f"{', '.join(s for s in speakers if s != held_out_speaker)}")
        val = f["speaker"] == val_speaker
        out.update(x_val=f["x"][val], y_val=f["digit"][val])
        train &= ~val
        # The validation split is a whole speaker: cross-validation folds split the rest by speaker too.
        out["groups"] = f["speaker"][train]
    return {"x": f["x"][train], "y": f["digit"][train], **out}
