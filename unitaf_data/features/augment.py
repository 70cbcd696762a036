"""Seeded augmentation of training clips, where features are made (`extract-features
--augment N`): each train clip gets N copies whose audio went through speed (and so pitch)
change, an inserted noise-only or silent stretch with the face at rest, noise, a channel,
reverb and gain, and whose face is moved to match, so that the copy's features and face are
exactly aligned.

A copy keeps its clip's length (T face frames, `round(T * 16000 / fps)` samples), so it
shares the clip's key and time grid and is stored beside the clip's own features in the
sidecar set `whisper_aug` (fields `teacher_{c}.npy`, `utterance_{c}.npy`, `face_{c}.npy` of
copy c; docs/FORMAT.md). How copy c of a clip is made is drawn from
`numpy.random.default_rng([seed, crc32(key), c])`:

1. speed: with `speed_share`, a factor in `speed` (resampled: faster is also higher); the
   face is resampled by the same factor;
2. lead-in: with `lead_share`, a stretch of `lead_s` seconds is inserted before the clip,
   the face held at the clip's first frame (clips start in a pause: the face at rest);
3. the result is cut back, or padded at the end with the same rest, to the clip's length;
4. conditions (`unitaf_data.conditions`): with `noise_share`, room, fan or babble (the other
   clips of the batch, or the clip itself reversed) noise at an SNR in `snr_db` measured
   over the speech (without noise the inserted stretch is digital silence); a telephone
   channel with `telephone_share`; reverb with `reverb_share`; always a level in -35 to
   -10 dBFS.

`copy_timing` replays steps 1 and 2 from the same generator, so that a copy's phones
(`copy_phones`) can follow it: the training loader moves each copy's /p b m/ phones for the
closure loss.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from unitaf_data.conditions import (
    LEVEL_RANGE_DBFS,
    NOISES,
    RT60_RANGE_S,
    Conditions,
    apply_conditions,
)
from unitaf_data.face import resample_face
from unitaf_data.phones import phones_in_clip
from unitaf_data.schema import SAMPLE_RATE, ClipSpan, Phone

AUGMENTED_SET = "whisper_aug"  # the augmented copies of the `whisper` (and utterance) set


@dataclass(frozen=True)
class AugmentSettings:
    """How copies are drawn (recorded in the set's feature.json and its resume settings)."""

    copies: int = 0  # per train clip; 0: no augmentation
    seed: int = 0
    speed_share: float = 0.5
    speed: tuple[float, float] = (0.9, 1.1)
    lead_share: float = 0.6
    lead_s: tuple[float, float] = (0.3, 1.5)
    noise_share: float = 0.8
    snr_db: tuple[float, float] = (0.0, 30.0)
    telephone_share: float = 0.15
    reverb_share: float = 0.2

    def __post_init__(self) -> None:
        if self.copies < 0:
            raise ValueError(f"--augment takes a number of copies >= 0, not {self.copies}")
        shares = (self.speed_share, self.lead_share, self.noise_share, self.telephone_share,
                  self.reverb_share)
        if not all(0.0 <= s <= 1.0 for s in shares):
            raise ValueError("augmentation shares must lie in [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @staticmethod
    def from_dict(data: Any, what: str = "augment settings") -> AugmentSettings:
        """The settings a set's feature.json records (`to_dict`); ValueError naming the key
        for a missing key or a value of the wrong type."""
        if not isinstance(data, dict):
            raise ValueError(f"{what}: not a mapping")
        values = {}
        for name, default in asdict(AugmentSettings()).items():
            if name not in data:
                raise ValueError(f"{what}: no {name!r}")
            value = data[name]
            if isinstance(default, tuple):
                if not (isinstance(value, list) and len(value) == 2 and all(
                        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
                    raise ValueError(f"{what}: {name!r} is not a pair of numbers")
                value = (float(value[0]), float(value[1]))
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    isinstance(default, int) and not isinstance(value, int):
                kind = "a whole number" if isinstance(default, int) else "a number"
                raise ValueError(f"{what}: {name!r} is not {kind}")
            values[name] = value
        return AugmentSettings(**values)


@dataclass(frozen=True)
class CopyTiming:
    """How a copy moved its clip's speech: time t of the clip plays at `t / speed + lead_s`
    in the copy (cut at the clip's length)."""

    speed: float = 1.0
    lead_s: float = 0.0

    def moved(self, t: float) -> float:
        return t / self.speed + self.lead_s


@dataclass(frozen=True)
class AugmentedCopy:
    audio: np.ndarray  # float32 (N,) at 16 kHz, N as the clip's
    face: np.ndarray  # float32 (T, C) at the clip's fps, T as the clip's
    speed: float
    lead_s: float
    conditions: Conditions


def copy_rng(settings: AugmentSettings, key: str, copy: int) -> np.random.Generator:
    return np.random.default_rng([settings.seed, zlib.crc32(key.encode()), copy])


def _draw_timing(rng: np.random.Generator, settings: AugmentSettings, fps: float
                 ) -> CopyTiming:
    """Steps 1 and 2: the first draws of a copy's generator."""
    speed = float(rng.uniform(*settings.speed)) if rng.random() < settings.speed_share else 1.0
    lead = round(float(rng.uniform(*settings.lead_s)) * fps) / fps \
        if rng.random() < settings.lead_share else 0.0
    return CopyTiming(speed, lead)


def copy_timing(settings: AugmentSettings, key: str, copy: int, fps: float) -> CopyTiming:
    """How copy `copy` of clip `key` (face at `fps`) moved its speech, as `augment_clip`
    drew it."""
    return _draw_timing(copy_rng(settings, key, copy), settings, fps)


def copy_phones(phones: Sequence[Phone], timing: CopyTiming, frames: int, fps: float
                ) -> tuple[Phone, ...]:
    """A clip's (clip-relative) phones where its copy plays them, cut at the copy's (the
    clip's) `frames` frames."""
    moved = [Phone(p.phone, timing.moved(p.start), timing.moved(p.end)) for p in phones]
    return phones_in_clip(moved, ClipSpan(0, 0.0, frames, fps))


def augment_clip(audio: np.ndarray, face: np.ndarray, fps: float, key: str, copy: int,
                 settings: AugmentSettings, babble: np.ndarray | None = None
                 ) -> AugmentedCopy:
    """Copy `copy` of one clip (16 kHz audio, face at `fps`); `babble` (other voices, any
    length) lets a copy draw babble noise, which otherwise falls back to room noise."""
    rng = copy_rng(settings, key, copy)
    frames, samples = len(face), len(audio)
    timing = _draw_timing(rng, settings, fps)
    speed, lead = timing.speed, timing.lead_s
    if speed != 1.0:
        from unitaf_data.audio import resample

        audio = resample(audio, round(SAMPLE_RATE * speed), SAMPLE_RATE)
        face = resample_face(face, fps * speed, fps, max(1, round(frames / speed)))
    rest = face[:1]
    lead_frames = round(lead * fps)
    lead_samples = round(lead_frames * SAMPLE_RATE / fps)
    face = np.concatenate([np.repeat(rest, lead_frames, 0), face])
    audio = np.concatenate([np.zeros(lead_samples, np.float32), audio])
    mask = np.zeros(samples, bool)
    mask[lead_samples : len(audio)] = True  # where the clip's own sound plays
    face = _fit(face, frames, rest)
    audio = np.pad(audio[:samples], (0, max(0, samples - len(audio))))
    conditions = _draw(rng, settings, lead, babble is not None)
    noisy = apply_conditions(audio, SAMPLE_RATE, conditions, rng, mask, babble)
    return AugmentedCopy(noisy, face.astype(np.float32), round(speed, 4), lead, conditions)


def _fit(face: np.ndarray, frames: int, rest: np.ndarray) -> np.ndarray:
    if len(face) >= frames:
        return face[:frames]
    return np.concatenate([face, np.repeat(rest, frames - len(face), 0)])


def _draw(rng: np.random.Generator, settings: AugmentSettings, lead: float,
          babble: bool) -> Conditions:
    noise = "none"
    snr = None
    if rng.random() < settings.noise_share:
        kinds = NOISES if babble else tuple(n for n in NOISES if n != "babble")
        noise = str(rng.choice(kinds))
        snr = round(float(rng.uniform(*settings.snr_db)), 2)
    channel = "telephone" if rng.random() < settings.telephone_share else "wideband"
    rt60 = round(float(rng.uniform(*RT60_RANGE_S)), 3) \
        if rng.random() < settings.reverb_share else None
    level = round(float(rng.uniform(*LEVEL_RANGE_DBFS)), 2)
    return Conditions(noise, snr, lead, 0.0, level, channel, rt60)


def batch_babble(audios: list[np.ndarray], me: int, voices: int = 3) -> np.ndarray:
    """Babble for clip `me` of a batch: up to `voices` other clips of it, level-matched and
    summed; a batch with no other clip gives the clip itself reversed (unintelligible,
    speech-like) at `voices` offsets."""
    others = [a.astype(np.float64) for i, a in enumerate(audios) if i != me][:voices]
    if not others:
        backwards = audios[me][::-1].astype(np.float64)
        others = [np.roll(backwards, len(backwards) * v // voices) for v in range(voices)]
    length = max(len(a) for a in others)
    mix = np.zeros(length)
    for audio in others:
        mix[: len(audio)] += audio / (np.sqrt(np.mean(audio**2)) + 1e-9)
    return mix


def copy_fields(copy: int) -> tuple[str, str, str]:
    """The sidecar fields of copy `copy`: teacher, utterance, face."""
    return f"teacher_{copy}.npy", f"utterance_{copy}.npy", f"face_{copy}.npy"
