"""Audio I/O: decode any file to 16 kHz mono float32, resample arrays, encode clips as FLAC."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf

from unitaf_data.schema import SAMPLE_RATE

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")  # what a folder of audio files may hold


def resample(audio: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling (libsoxr, high quality); a no-op when the rates agree."""
    if orig_sr == target_sr:
        return audio.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(audio, orig_sr, target_sr, quality="HQ").astype(np.float32)


# What decoding a damaged or hostile audio file raises (libsndfile's errors, an empty or
# impossible signal, a truncated or unreadable file, a header asking for absurd sizes):
# anything else raised while decoding is a bug and is left to surface.
AUDIO_ERRORS = (sf.SoundFileError, ValueError, EOFError, OSError, MemoryError)


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode a file to mono float32 at `sample_rate`. Raises on unreadable or empty audio."""
    data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    if data.shape[0] == 0:
        raise ValueError(f"{path}: no audio samples")
    return resample(data.mean(axis=1), file_sr, sample_rate)


def flac_bytes(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """Mono 16-bit FLAC of a float waveform in [-1, 1] (clipped)."""
    buffer = io.BytesIO()
    pcm = np.clip(audio, -1.0, 1.0)
    sf.write(buffer, pcm, sample_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def decode_flac(data: bytes) -> tuple[np.ndarray, int]:
    audio, sample_rate = sf.read(io.BytesIO(data), dtype="float32")
    return audio, sample_rate


def rms_db(audio: np.ndarray) -> float:
    """Root-mean-square level in dBFS (−inf-safe: silence gives −120)."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
    return 20.0 * np.log10(max(rms, 1e-6))
