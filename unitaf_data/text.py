"""Text normalisation for comparing transcripts, and word error rate."""

from __future__ import annotations

import re
import unicodedata

_NOT_WORD = re.compile(r"[^\w' ]+")
_SPACES = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Lower case, accents folded, punctuation removed (apostrophes kept), single spaces."""
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch)).lower()
    folded = folded.replace("-", " ")
    return _SPACES.sub(" ", _NOT_WORD.sub(" ", folded)).strip()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER of `hypothesis` against `reference` after normalisation (1.0 for an empty ref
    with a non-empty hypothesis, 0.0 when both are empty)."""
    import jiwer

    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return float(jiwer.wer(ref, hyp)) if hyp else 1.0


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit operations, reference words): to pool WER over many clips."""
    ref = normalize_text(reference)
    return round(word_error_rate(reference, hypothesis) * len(ref.split())), len(ref.split())
