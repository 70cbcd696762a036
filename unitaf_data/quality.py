"""Quality rules for clips: each rule either passes or names the reason the clip is dropped."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unitaf_data.audio import rms_db
from unitaf_data.schema import AsrInfo, AsrSegment, ClipSpan


@dataclass(frozen=True)
class QualityRules:
    min_rms_db: float = -50.0  # quieter clips are silence
    max_no_speech_prob: float = 0.6  # with low log-probability: text on silence
    min_avg_logprob: float = -1.0
    max_compression_ratio: float = 2.4  # gzip ratio of the text: repetition loops
    max_wer: float | None = None  # against reference text, where the corpus has it


def asr_stats(segments: list[AsrSegment], span: ClipSpan) -> dict[str, float]:
    """ASR statistics of the decoder segments overlapping the clip: duration-weighted mean
    log-probability, worst no-speech probability and worst compression ratio."""
    overlapping = [s for s in segments if s.end > span.start and s.start < span.end]
    if not overlapping:
        return {"avg_logprob": float("-inf"), "no_speech_prob": 1.0, "compression_ratio": 0.0}
    weights = np.array([max(1e-3, min(s.end, span.end) - max(s.start, span.start))
                        for s in overlapping])
    logprob = float(np.average([s.avg_logprob for s in overlapping], weights=weights))
    return {
        "avg_logprob": round(logprob, 4),
        "no_speech_prob": round(max(s.no_speech_prob for s in overlapping), 4),
        "compression_ratio": round(max(s.compression_ratio for s in overlapping), 4),
    }


def check_clip(
    audio: np.ndarray, face: np.ndarray, text: str, asr: AsrInfo,
    wer: float | None, rules: QualityRules,
) -> str | None:
    """None when the clip is kept; otherwise the reason it is dropped."""
    if not text.strip():
        return "empty_transcript"
    if not np.isfinite(face).all():
        return "face_not_finite"
    if rms_db(audio) < rules.min_rms_db:
        return "silent_audio"
    silent = asr.no_speech_prob > rules.max_no_speech_prob
    if silent and asr.avg_logprob < rules.min_avg_logprob:
        return "asr_text_on_silence"
    if asr.compression_ratio > rules.max_compression_ratio:
        return "asr_repetition"
    if wer is not None and rules.max_wer is not None and wer > rules.max_wer:
        return "asr_wer_too_high"
    return None
