"""Text normalisation for comparing transcripts, word error rate, and timing an untimed
transcript by aligning it to the ASR words."""

from __future__ import annotations

import re
import unicodedata

from unitaf_data.schema import Word

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


def align_reference(reference: str, asr_words: list[Word]) -> list[Word]:
    """Times for the words of an untimed transcript, borrowed from the ASR words they align
    to (edit-distance alignment); a reference word with no ASR partner takes the time of
    the ASR word before it (or after it, at the start)."""
    import jiwer

    ref_words = reference.split()
    hyp_norm = [normalize_text(w.word) or "_" for w in asr_words]
    ref_norm = [normalize_text(w) or "_" for w in ref_words]
    if not asr_words or not ref_words:
        return []
    alignment = jiwer.process_words(" ".join(ref_norm), " ".join(hyp_norm)).alignments[0]
    partner: dict[int, int] = {}
    for chunk in alignment:
        if chunk.type in ("equal", "substitute"):
            for offset in range(chunk.ref_end_idx - chunk.ref_start_idx):
                partner[chunk.ref_start_idx + offset] = chunk.hyp_start_idx + offset
        elif chunk.type == "delete":
            for i in range(chunk.ref_start_idx, chunk.ref_end_idx):
                partner[i] = max(chunk.hyp_start_idx - 1, 0)
    return [Word(word, asr_words[partner[i]].start, asr_words[partner[i]].end)
            for i, word in enumerate(ref_words)]
