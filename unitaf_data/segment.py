"""Cutting recordings into clips at pauses between words.

A clip never starts or ends inside a word, starts on a face-frame boundary, and is a whole
number of face frames long; audio and face are cut at the same instant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from unitaf_data.schema import SAMPLE_RATE, ClipSpan, Recording, Word


@dataclass(frozen=True)
class SegmentSettings:
    min_seconds: float = 2.0
    max_seconds: float = 15.0
    min_pause: float = 0.2  # a gap between words at least this long may hold a cut
    pad: float = 0.15  # silence kept before the first and after the last word


@dataclass(frozen=True)
class PlannedSpan:
    """A candidate clip: its span and words (recording time), or why it cannot be a clip."""

    span: ClipSpan
    words: tuple[Word, ...]
    problem: str | None = None


def phrases(words: list[Word], min_pause: float) -> list[list[Word]]:
    """Runs of words separated by gaps of at least `min_pause` seconds."""
    runs: list[list[Word]] = []
    for word in words:
        if runs and word.start - runs[-1][-1].end < min_pause:
            runs[-1].append(word)
        else:
            runs.append([word])
    return runs


def split_long(run: list[Word], max_seconds: float) -> list[list[Word]]:
    """A phrase longer than `max_seconds`, split recursively at its widest gap between words
    (ASR word times often swallow short pauses, so such phrases still have word gaps)."""
    if len(run) < 2 or run[-1].end - run[0].start <= max_seconds:
        return [run]
    widest = max(range(1, len(run)), key=lambda i: run[i].start - run[i - 1].end)
    return split_long(run[:widest], max_seconds) + split_long(run[widest:], max_seconds)


def group_phrases(runs: list[list[Word]], settings: SegmentSettings) -> list[list[Word]]:
    """Greedily join consecutive phrases while the clip stays within `max_seconds`."""
    groups: list[list[Word]] = []
    limit = settings.max_seconds - 2 * settings.pad
    for run in (part for phrase in runs for part in split_long(phrase, limit)):
        if groups and run[-1].end - groups[-1][0].start + 2 * settings.pad <= settings.max_seconds:
            groups[-1] += run
        else:
            groups.append(list(run))
    return groups


def plan_spans(
    words: list[Word], limit: float, fps: float, settings: SegmentSettings,
    audio: np.ndarray | None = None, sample_rate: int = SAMPLE_RATE,
) -> list[PlannedSpan]:
    """Clip spans over a recording whose audio and face both last at least `limit` seconds.

    With `audio`, each cut is placed in the silence inside the word gap (ASR word times are
    often late or early by a syllable), keeping at most `pad` seconds of it on each side.
    """
    words = [w for w in words if w.end <= limit and w.start >= 0.0]
    groups = group_phrases(phrases(words, settings.min_pause), settings)
    edges = [0.0] + [t for g in groups for t in (g[0].start, g[-1].end)] + [limit]
    silence_db = silence_threshold_db(audio) if audio is not None else 0.0
    gaps = [quiet_run(audio, sample_rate, edges[i], edges[i + 1], silence_db)
            for i in range(0, len(edges), 2)]  # before each group, and after the last
    planned = []
    for index, group in enumerate(groups):
        last = index + 1 == len(groups)
        start, _ = _cut_points(gaps[index], settings.pad, leading=index == 0)
        next_start, end = _cut_points(gaps[index + 1], settings.pad, trailing=last)
        span = _snap(index, group, start, end, limit if last else next_start, fps)
        problem = None
        if span.duration < settings.min_seconds:
            problem = "too_short"
        elif span.duration > settings.max_seconds + 1.0 / fps:
            problem = "too_long_without_pause"
        planned.append(PlannedSpan(span, tuple(group), problem))
    return planned


def silence_threshold_db(audio: np.ndarray) -> float:
    """Level under which a 20 ms frame is silence: 35 dB under the recording's peak."""
    return max(20 * np.log10(np.max(np.abs(audio)) + 1e-6) - 35.0, -70.0)


def quiet_run(audio: np.ndarray | None, sample_rate: int, a: float, b: float,
              silence_db: float) -> tuple[float, float]:
    """The longest silent stretch (20 ms frames under `silence_db`) in [a, b]; the quietest
    frame when nothing there is silent; all of [a, b] without audio."""
    if audio is None or b - a < 0.04:
        return a, b
    hop = int(0.02 * sample_rate)
    first, last = int(a * sample_rate), int(b * sample_rate)
    frames = audio[first : first + (last - first) // hop * hop].reshape(-1, hop)
    level = 10 * np.log10(np.mean(np.square(frames, dtype=np.float64), axis=1) + 1e-12)
    silent = level < silence_db
    if not silent.any():
        quietest = a + (np.argmin(level) + 0.5) * hop / sample_rate
        return quietest, quietest
    best_start, best_length, run_start = 0, 0, None
    for i, is_silent in enumerate(np.append(silent, False)):
        if is_silent and run_start is None:
            run_start = i
        elif not is_silent and run_start is not None:
            if i - run_start > best_length:
                best_start, best_length = run_start, i - run_start
            run_start = None
    return (a + best_start * hop / sample_rate,
            a + (best_start + best_length) * hop / sample_rate)


def _cut_points(gap: tuple[float, float], pad: float, leading: bool = False,
                trailing: bool = False) -> tuple[float, float]:
    """Where the clip before a silent stretch ends and the clip after it starts."""
    silence_start, silence_end = gap
    end, start = min(silence_start + pad, silence_end), max(silence_end - pad, silence_start)
    if end > start and not (leading or trailing):  # short pause: both cut in its middle
        end = start = (silence_start + silence_end) / 2
    return start, end


def _snap(
    index: int, group: list[Word], start: float, end: float, bound: float, fps: float
) -> ClipSpan:
    """Frame-aligned span: the first frame boundary at or after `start` (so neighbouring
    clips never overlap), whole frames up to `end` covering the group's words, never past
    `bound` (where the next clip starts, or the end of the recording)."""
    first_frame = math.ceil(start * fps - 1e-9)
    if first_frame / fps > group[0].start:  # never cut into the first word
        first_frame = math.floor(group[0].start * fps + 1e-9)
    frame_start = first_frame / fps
    num_frames = math.floor((end - frame_start) * fps + 1e-9)
    covering = math.ceil((group[-1].end - frame_start) * fps - 1e-9)
    most = math.floor((bound - frame_start) * fps + 1e-9)
    return ClipSpan(index=index, start=frame_start,
                    num_frames=min(max(num_frames, covering), most), fps=fps)


def cut(recording: Recording, span: ClipSpan) -> tuple[np.ndarray, np.ndarray]:
    """Audio `round(T*sr/fps)` samples from `start`, and face frames [first, first+T)."""
    first_sample = span.first_sample(recording.sample_rate)
    audio = recording.audio[first_sample : first_sample + span.num_samples(recording.sample_rate)]
    face = recording.face[span.first_frame() : span.first_frame() + span.num_frames]
    return audio, face


def words_in_clip(words: tuple[Word, ...] | list[Word], span: ClipSpan) -> tuple[Word, ...]:
    """Words relative to the clip start, clamped into it, times rounded to milliseconds."""
    return tuple(
        Word(w.word, round(max(0.0, w.start - span.start), 3),
             round(min(span.duration, max(0.0, w.end - span.start)), 3), round(w.prob, 4))
        for w in words
    )


def text_in_span(words: list[Word], span: ClipSpan) -> str:
    """The words whose midpoint falls inside the clip, joined."""
    return " ".join(w.word for w in words if span.start <= (w.start + w.end) / 2 < span.end)
