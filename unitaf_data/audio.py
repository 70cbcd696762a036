"""Audio I/O: decode any file to 16 kHz mono float32 (bounded: rates, length and values are
checked, channels are mixed down block by block), resample arrays, encode clips as FLAC."""

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


# What a decoded file may be. An hour of 16 kHz mono float32 is 230 MB; longer recordings
# are refused rather than decoded (cut them first): a corpus recording, a voice to animate
# or a voice prompt is minutes long. Rates outside these bounds are not audio of speech.
MAX_AUDIO_SECONDS = 3600.0
MIN_RATE, MAX_RATE = 4_000, 384_000
MAX_CHANNELS = 64
_BLOCK_FRAMES = 1 << 16


class AudioError(ValueError):
    """An audio file that cannot be used: `reason` is short and countable (unreadable_audio,
    bad_sample_rate, too_many_channels, audio_too_long, empty_audio, nonfinite_audio; and
    audio_too_short where a caller needs more); the message says what was found."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def read_mono(path: str | Path, max_seconds: float = MAX_AUDIO_SECONDS
              ) -> tuple[np.ndarray, int]:
    """A file's samples mixed down to mono float32, at its own rate: AudioError when it is
    unreadable, of a rate outside [MIN_RATE, MAX_RATE], of more than MAX_CHANNELS channels,
    longer than `max_seconds` (by its header, or by what decodes), empty, or holding NaN or
    inf. Memory stays within the mono result plus one block, whatever the header claims."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioError("unreadable_audio", f"{path}: {error}") from None
    rate, channels = int(info.samplerate), int(info.channels)
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError("bad_sample_rate", f"{path}: sample rate {rate} Hz, outside "
                         f"{MIN_RATE}-{MAX_RATE} Hz")
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError("too_many_channels", f"{path}: {channels} channels (at most "
                         f"{MAX_CHANNELS})")
    limit = int(max_seconds * rate)
    if info.frames > limit:
        raise AudioError("audio_too_long", f"{path}: {info.frames / rate:.0f} s by its header,"
                         f" over the {max_seconds:.0f} s limit: cut it into shorter files")
    return _decode_blocks(path, rate, limit, max_seconds), rate


def _decode_blocks(path: str | Path, rate: int, limit: int, max_seconds: float) -> np.ndarray:
    blocks, frames = [], 0
    try:
        for block in sf.blocks(str(path), blocksize=_BLOCK_FRAMES, dtype="float32",
                               always_2d=True):
            frames += len(block)
            if frames > limit:
                raise AudioError("audio_too_long", f"{path}: over {max_seconds:.0f} s of "
                                 "audio: cut it into shorter files")
            blocks.append(block.mean(axis=1, dtype=np.float32))
    except (sf.LibsndfileError, RuntimeError) as error:
        raise AudioError("unreadable_audio", f"{path}: {error}") from None
    if frames == 0:
        raise AudioError("empty_audio", f"{path}: no audio samples")
    audio = np.concatenate(blocks)
    if not np.isfinite(audio).all():
        raise AudioError("nonfinite_audio", f"{path}: {int((~np.isfinite(audio)).sum())} "
                         f"NaN or infinite samples")
    return audio


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE,
               max_seconds: float = MAX_AUDIO_SECONDS) -> np.ndarray:
    """Decode a file to mono float32 at `sample_rate` (`read_mono`'s checks: AudioError)."""
    audio, file_sr = read_mono(path, max_seconds)
    return resample(audio, file_sr, sample_rate)


# What decoding a damaged or hostile audio file raises (libsndfile's errors, an empty or
# impossible signal, a truncated or unreadable file, a header asking for absurd sizes):
# anything else raised while decoding is a bug and is left to surface. `read_mono` turns
# what it can name into AudioError (a ValueError).
AUDIO_ERRORS = (sf.SoundFileError, ValueError, EOFError, OSError, MemoryError)


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
