"""Cutting recordings into clips at pauses between words.

A clip never starts or ends inside a word, starts on a face-frame boundary, and is a whole
number of face frames long; audio and face are cut at the same instant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from unitaf_data.schema import ClipSpan, Recording, Word


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
    words: list[Word], limit: float, fps: float, settings: SegmentSettings
) -> list[PlannedSpan]:
    """Clip spans over a recording whose audio and face both last at least `limit` seconds."""
    words = [w for w in words if w.end <= limit and w.start >= 0.0]
    groups = group_phrases(phrases(words, settings.min_pause), settings)
    planned = []
    for index, group in enumerate(groups):
        lo = (groups[index - 1][-1].end + group[0].start) / 2 if index else 0.0
        hi = (group[-1].end + groups[index + 1][0].start) / 2 if index + 1 < len(groups) else limit
        span = _snap(index, group, lo, hi, fps, settings.pad)
        problem = None
        if span.duration < settings.min_seconds:
            problem = "too_short"
        elif span.duration > settings.max_seconds + 1.0 / fps:
            problem = "too_long_without_pause"
        planned.append(PlannedSpan(span, tuple(group), problem))
    return planned


def _snap(index: int, group: list[Word], lo: float, hi: float, fps: float, pad: float) -> ClipSpan:
    """Frame-aligned span around `group`, padded by `pad` but kept inside [lo, hi] (the
    middles of the gaps to the neighbouring groups), so neighbouring clips never overlap."""
    first_frame = math.floor(max(group[0].start - pad, lo) * fps + 1e-9)
    if first_frame / fps < lo:
        first_frame += 1
    start = first_frame / fps
    num_frames = math.floor((min(group[-1].end + pad, hi) - start) * fps + 1e-9)
    covering = math.ceil((group[-1].end - start) * fps - 1e-9)
    if covering > num_frames and start + covering / fps <= hi + 1e-9:
        num_frames = covering
    return ClipSpan(index=index, start=start, num_frames=num_frames, fps=fps)


def cut(recording: Recording, span: ClipSpan) -> tuple[np.ndarray, np.ndarray]:
    """Audio `round(T*sr/fps)` samples from `start`, and face frames [first, first+T)."""
    first_sample = span.first_sample(recording.sample_rate)
    audio = recording.audio[first_sample : first_sample + span.num_samples(recording.sample_rate)]
    face = recording.face[span.first_frame() : span.first_frame() + span.num_frames]
    return audio, face


def words_in_clip(words: tuple[Word, ...] | list[Word], span: ClipSpan) -> list[dict]:
    """Words relative to the clip start, clamped into it, times rounded to milliseconds."""
    return [
        {"word": w.word, "start": round(max(0.0, w.start - span.start), 3),
         "end": round(min(span.duration, w.end - span.start), 3), "prob": round(w.prob, 4)}
        for w in words
    ]


def reference_in_span(reference: list[Word], span: ClipSpan) -> str:
    """Reference words whose midpoint falls inside the clip, joined."""
    return " ".join(
        w.word for w in reference if span.start <= (w.start + w.end) / 2 < span.end
    )
