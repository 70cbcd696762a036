"""Recording conditions: synthetic noise, gain, a telephone channel and light reverb.

Real speech reaches a microphone through a room and a channel, over noise; the demo corpus
and the feature augmentation of `extract-features` put clean speech through the same
steps, seeded, so a model learns what speech sounds like there and, above all, that noise
alone is no speech. Everything here is numpy (plus libsoxr for the 8 kHz channel) and
deterministic given the random generator it is handed.

Steps, in this order:
- `reverb`: convolution with a synthetic room impulse response (a direct path and an
  exponentially decaying noise tail, RT60 0.15-0.45 s), mixed 30 % wet;
- `noise`: `room` (pink, low-passed), `fan` (brown noise plus a hum and its harmonics) or
  `babble` (a mix of other voices, handed in), at an SNR measured over the speech;
- `telephone`: the 300-3400 Hz band, down to 8 kHz and back;
- `level`: gain to an RMS level in dBFS measured over the speech, peaks kept under 0.99.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

NOISES = ("room", "fan", "babble")
CHANNELS = ("wideband", "telephone")
SNR_RANGE_DB = (5.0, 30.0)
LEVEL_RANGE_DBFS = (-35.0, -10.0)
RT60_RANGE_S = (0.15, 0.45)
TELEPHONE_BAND_HZ = (300.0, 3400.0)
TELEPHONE_RATE = 8000
_REVERB_WET = 0.3
CONDITION_FIELDS = {"noise": str, "snr_db": float, "lead_s": float, "tail_s": float,
                    "level_dbfs": float, "channel": str, "reverb_rt60": float}


@dataclass(frozen=True)
class Conditions:
    """What was done to one recording's clean speech (recorded in every clip's json as
    `custom.conditions`). `lead_s`/`tail_s` are the noise-only (or silent) stretches before
    the first and after the last word, during which the face is at rest."""

    noise: str = "none"  # none or one of NOISES
    snr_db: float | None = None  # speech RMS over noise RMS
    lead_s: float = 0.0
    tail_s: float = 0.0
    level_dbfs: float | None = None  # speech RMS after gain (None: the synthesiser's level)
    channel: str = "wideband"  # or telephone
    reverb_rt60: float | None = None  # seconds

    @property
    def clean(self) -> bool:
        return (self.noise == "none" and self.level_dbfs is None
                and self.channel == "wideband" and self.reverb_rt60 is None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def label(self) -> str:
        """Short summary for tables: `clean`, or e.g. `babble 12dB+telephone+reverb`."""
        if self.clean:
            return "clean"
        parts = [f"{self.noise} {self.snr_db:.0f}dB"] if self.noise != "none" else []
        parts += ["telephone"] if self.channel == "telephone" else []
        parts += ["reverb"] if self.reverb_rt60 is not None else []
        parts += [f"{self.level_dbfs:.0f}dBFS"] if self.level_dbfs is not None else []
        return "+".join(parts)


def draw_conditions(rng: np.random.Generator, lead_s: float, tail_s: float) -> Conditions:
    """Seeded conditions for one recording: noise in 80 % of cases (SNR uniform in 5-30 dB),
    a level in -35 to -10 dBFS always, a telephone channel in 25 %, reverb in 35 %."""
    noise = str(rng.choice(NOISES)) if rng.random() < 0.8 else "none"
    snr = round(float(rng.uniform(*SNR_RANGE_DB)), 2) if noise != "none" else None
    level = round(float(rng.uniform(*LEVEL_RANGE_DBFS)), 2)
    channel = "telephone" if rng.random() < 0.25 else "wideband"
    rt60 = round(float(rng.uniform(*RT60_RANGE_S)), 3) if rng.random() < 0.35 else None
    return Conditions(noise, snr, round(lead_s, 3), round(tail_s, 3), level, channel, rt60)


def apply_conditions(speech: np.ndarray, sample_rate: int, conditions: Conditions,
                     rng: np.random.Generator, speech_mask: np.ndarray | None = None,
                     babble: np.ndarray | None = None) -> np.ndarray:
    """`speech` (float32, mono) through reverb, noise, channel and gain, in that order.

    `speech_mask` marks the samples where someone speaks (SNR and level are measured there;
    default: every sample); `babble` is the voice mix a `babble` noise is cut from."""
    audio = speech.astype(np.float64)
    mask = np.ones(len(audio), bool) if speech_mask is None else speech_mask
    if conditions.reverb_rt60 is not None:
        audio = reverb(audio, sample_rate, conditions.reverb_rt60, rng)
    if conditions.noise != "none":
        noise = make_noise(conditions.noise, len(audio), sample_rate, rng, babble)
        audio = mix_at_snr(audio, noise, conditions.snr_db, mask)
    if conditions.channel == "telephone":
        audio = telephone(audio, sample_rate)
    if conditions.level_dbfs is not None:
        audio = set_level(audio, conditions.level_dbfs, mask)
    return audio.astype(np.float32)


def _rms(audio: np.ndarray, mask: np.ndarray | None = None) -> float:
    part = audio if mask is None or not mask.any() else audio[mask]
    return float(np.sqrt(np.mean(np.square(part, dtype=np.float64)) + 1e-20))


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float,
               mask: np.ndarray | None = None) -> np.ndarray:
    """Speech plus noise scaled so that speech RMS (over `mask`) / noise RMS = `snr_db`."""
    if noise.shape != speech.shape:
        raise ValueError(f"noise {noise.shape} and speech {speech.shape} differ in length")
    scale = _rms(speech, mask) / (_rms(noise) * 10 ** (snr_db / 20))
    return speech + scale * noise


def set_level(audio: np.ndarray, level_dbfs: float, mask: np.ndarray | None = None
              ) -> np.ndarray:
    """Gain to `level_dbfs` RMS over `mask`, lowered where needed to keep peaks under 0.99."""
    gain = 10 ** (level_dbfs / 20) / _rms(audio, mask)
    peak = float(np.max(np.abs(audio))) * gain
    return audio * (gain * min(1.0, 0.99 / peak) if peak > 0 else gain)


def _shaped_noise(length: int, sample_rate: int, rng: np.random.Generator,
                  exponent: float, cutoff_hz: float) -> np.ndarray:
    """White noise shaped to a 1/f^exponent power spectrum, rolled off above `cutoff_hz`."""
    spectrum = np.fft.rfft(rng.standard_normal(length))
    freqs = np.fft.rfftfreq(length, 1 / sample_rate)
    shape = 1.0 / np.maximum(freqs, 20.0) ** (exponent / 2)
    shape /= 1.0 + (freqs / cutoff_hz) ** 4
    noise = np.fft.irfft(spectrum * shape, n=length)
    return noise / _rms(noise)


def make_noise(kind: str, length: int, sample_rate: int, rng: np.random.Generator,
               babble: np.ndarray | None = None) -> np.ndarray:
    """Unit-RMS noise of `kind` (`room`, `fan` or `babble`), `length` samples."""
    if kind == "room":
        return _shaped_noise(length, sample_rate, rng, 1.0, 4000.0)
    if kind == "fan":
        t = np.arange(length) / sample_rate
        base = rng.uniform(45.0, 120.0)
        hum = sum(np.sin(2 * np.pi * base * h * t + rng.uniform(0, 2 * np.pi)) / h
                  for h in (1, 2, 3, 4))
        noise = _shaped_noise(length, sample_rate, rng, 2.0, 2500.0) + 0.3 * hum / _rms(hum)
        return noise / _rms(noise)
    if kind == "babble":
        if babble is None or len(babble) == 0:
            raise ValueError("babble noise needs a mix of voices to cut it from")
        start = int(rng.integers(len(babble)))
        noise = np.resize(np.roll(babble, -start), length).astype(np.float64)
        return noise / _rms(noise)
    raise ValueError(f"unknown noise {kind!r}; choose from {', '.join(NOISES)}")


def telephone(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """A telephone channel: 300-3400 Hz (smooth band edges), 8 kHz, back to `sample_rate`."""
    from unitaf_data.audio import resample

    spectrum = np.fft.rfft(audio)
    freqs = np.fft.rfftfreq(len(audio), 1 / sample_rate)
    low, high = TELEPHONE_BAND_HZ
    band = 1.0 / (1.0 + (low / np.maximum(freqs, 1.0)) ** 8) / (1.0 + (freqs / high) ** 8)
    narrow = np.fft.irfft(spectrum * band, n=len(audio)).astype(np.float32)
    back = resample(resample(narrow, sample_rate, TELEPHONE_RATE), TELEPHONE_RATE, sample_rate)
    return np.resize(back, len(audio)).astype(np.float64) if len(back) != len(audio) else \
        back.astype(np.float64)


def room_impulse(sample_rate: int, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room impulse response: direct path, then exponentially decaying noise
    (60 dB down after `rt60` seconds), energy-normalised tail."""
    length = int(rt60 * sample_rate)
    t = np.arange(length) / sample_rate
    tail = rng.standard_normal(length) * 10 ** (-3 * t / rt60)
    tail[: int(0.002 * sample_rate)] = 0.0  # first reflections arrive after ~2 ms
    impulse = np.zeros(length)
    impulse[0] = 1.0
    return impulse + tail / np.sqrt(np.sum(tail**2) + 1e-20)


def reverb(audio: np.ndarray, sample_rate: int, rt60: float, rng: np.random.Generator
           ) -> np.ndarray:
    """Light reverb: the dry signal mixed with its convolution by a synthetic room."""
    impulse = room_impulse(sample_rate, rt60, rng)
    size = len(audio) + len(impulse) - 1
    wet = np.fft.irfft(np.fft.rfft(audio, size) * np.fft.rfft(impulse, size), n=size)
    wet = wet[: len(audio)] * (_rms(audio) / _rms(wet[: len(audio)]))
    return (1 - _REVERB_WET) * audio + _REVERB_WET * wet
