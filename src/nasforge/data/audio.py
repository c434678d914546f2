"""Spoken-digit audio (FSDD) as log-mel spectrograms, computed with PyTorch alone and cached.

WAV files are read with the standard library's `wave`; the spectrogram is `torch.stft` power
through a triangular HTK-mel filterbank written here (no torchaudio). Features are cached per
(recordings, parameters) as one .npz in a user cache directory, so a search re-reads them in
milliseconds; a changed, added or removed recording gives a different cache key.

Splits: "upstream" (takes 0-4 of every speaker and digit are the test split, the FSDD convention)
and "speaker" (every recording of one held-out speaker is the test split).
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


@dataclass(frozen=True)
class MelOptions:
    sample_rate: int = 8000
    n_fft: int = 256  # 32 ms windows at 8 kHz
    hop: int = 80  # 10 ms
    n_mels: int = 40
    f_min: float = 0.0
    f_max: float | None = None  # Nyquist
    # Every clip is centred and padded / cropped to this many samples (1 s covers 99% of FSDD).
    samples: int = 8000
    floor: float = 1e-5  # added before the log, so silence stays finite


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
        feats = log_mel(torch.from_numpy(np.stack(waves)), options).numpy().astype(np.float32)
    arrays = {
        "x": feats,
        "digit": np.array([d for _, d, _, _ in files], dtype=np.int64),
        "speaker": np.array([s for _, _, s, _ in files]),
        "take": np.array([t for *_, t in files], dtype=np.int64),
    }
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return arrays


def load_fsdd(folder: str | Path, split: str = "upstream", held_out_speaker: str = "theo", cache_dir: str | Path | None = None,
              options: MelOptions = MelOptions()) -> dict[str, np.ndarray]:
    """Train and test arrays (x: N x n_mels x frames, y: digit) of one FSDD split."""
    if split not in SPLITS:
        raise DataError(f"fsdd: unknown split {split!r}; choose from {', '.join(SPLITS)}")
    f = fsdd_features(folder, options, cache_dir)
    if split == "upstream":
        test = f["take"] <= 4
    else:
        speakers = sorted(set(f["speaker"].tolist()))
        if held_out_speaker not in speakers:
            raise DataError(f"fsdd: no speaker {held_out_speaker!r} in {folder}; speakers: {', '.join(speakers)}")
        test = f["speaker"] == held_out_speaker
    return {"x": f["x"][~test], "y": f["digit"][~test], "x_test": f["x"][test], "y_test": f["digit"][test]}
