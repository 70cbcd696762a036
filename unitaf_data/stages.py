"""The build's stage functions: plain values in, plain values out, no Ray.

load_recording → (ASR: `unitaf_data.asr.Transcriber`) → plan_recording → shard planning
(`unitaf_data.shards.plan_shards`) → write_shard. `pipelines.build` runs them on Ray; a
notebook or test can call them one by one.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unitaf_data import shards
from unitaf_data.audio import AUDIO_ERRORS, flac_bytes, rms_db
from unitaf_data.conditions import Conditions
from unitaf_data.dataset import Location, ShardRef
from unitaf_data.face import resample_face
from unitaf_data.phones import clip_phones
from unitaf_data.quality import QualityRules, asr_stats, check_clip
from unitaf_data.schema import (
    SAMPLE_RATE,
    AsrInfo,
    ClipMeta,
    ClipSpan,
    Recording,
    RecordingRef,
    Rejection,
    ShardInfo,
    Transcript,
    Word,
    make_key,
    validate_clip,
)
from unitaf_data.segment import (
    PlannedSpan,
    SegmentSettings,
    cut,
    plan_spans,
    text_in_span,
    words_in_clip,
)
from unitaf_data.sources import FACE_FILE_ERRORS, InputError, get_source
from unitaf_data.text import align_reference, word_error_rate

log = logging.getLogger(__name__)

MAX_FACE_AUDIO_MISMATCH_SECONDS = 0.1


@dataclass
class RecordingPlan:
    """What one recording contributes: its clips' metadata (the `json` field of each sample,
    which also says where to cut) and what was dropped. Saved as the recording's unit of
    work."""

    ref: RecordingRef
    duration: float
    face_type: str
    channels: list[str]
    fps: float
    clips: list[ClipMeta] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"ref": asdict(self.ref), "duration": self.duration,
                "face_type": self.face_type, "channels": self.channels, "fps": self.fps,
                "clips": [clip.to_dict() for clip in self.clips],
                "rejections": [r.to_dict() for r in self.rejections]}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> RecordingPlan:
        return RecordingPlan(**{
            **data, "ref": RecordingRef(**data["ref"]),
            "clips": [ClipMeta.from_dict(c) for c in data["clips"]],
            "rejections": [Rejection(**r) for r in data["rejections"]],
        })


def load_recording(
    ref: RecordingRef, face_fps_out: float | None = None, min_rms_db: float = -50.0
) -> Recording | Rejection:
    """Decode and check one recording; bad input (what a damaged file raises) becomes a
    Rejection, never an exception; anything else (a bug) is raised, not counted.

    A face track within 0.1 s of the audio's length is trimmed with the audio to the
    shorter of the two; a larger mismatch rejects the recording. With `face_fps_out` the
    face is resampled to that rate. Audio quieter than `min_rms_db` is silence.
    """
    try:
        recording = get_source(ref.source).load(ref)
    except InputError as error:
        log.debug("rejected recording %s: %s", ref.id, error)
        return Rejection("recording", ref.id, error.reason, str(error))
    except (*FACE_FILE_ERRORS, *AUDIO_ERRORS) as error:  # a damaged file a source let through
        log.debug("rejected recording %s: %s", ref.id, error)
        return Rejection("recording", ref.id, "unreadable", f"{type(error).__name__}: {error}")
    face_seconds = len(recording.face) / recording.fps
    if abs(face_seconds - recording.duration) > MAX_FACE_AUDIO_MISMATCH_SECONDS:
        return Rejection("recording", ref.id, "face_audio_length_mismatch",
                         f"face {face_seconds:.3f} s vs audio {recording.duration:.3f} s")
    level = rms_db(recording.audio)
    if level < min_rms_db:
        return Rejection("recording", ref.id, "silent_audio", f"{level:.1f} dBFS")
    if face_fps_out and face_fps_out != recording.fps:
        recording.face = resample_face(recording.face, recording.fps, face_fps_out)
        recording.fps = face_fps_out
    frames = min(len(recording.face), int(recording.duration * recording.fps + 1e-9))
    recording.face = recording.face[:frames]
    recording.audio = recording.audio[: round(frames * recording.sample_rate / recording.fps)]
    return recording


def reference_words(recording: Recording, transcript: Transcript) -> list[Word] | None:
    """The corpus transcript with word times: as given (TextGrid), or aligned to the ASR."""
    if recording.reference_words is not None:
        return recording.reference_words
    if recording.reference_text is not None:
        return align_reference(recording.reference_text, transcript.words)
    return None


def plan_recording(
    recording: Recording,
    transcript: Transcript,
    segment: SegmentSettings,
    rules: QualityRules,
    text_source: str = "auto",
) -> RecordingPlan:
    """Cut points, per-clip metadata and quality decisions for one transcribed recording.

    `text_source`: `asr`, `reference` (the corpus transcript; recordings without one are
    rejected) or `auto` (reference when the corpus has one). Clips are cut on the word
    times of the chosen text.
    """
    ref = recording.ref
    plan = RecordingPlan(ref, recording.duration, recording.face_type,
                         list(recording.channels), recording.fps)
    reference = reference_words(recording, transcript)
    if text_source == "reference" and not reference:
        plan.rejections.append(Rejection("recording", ref.id, "no_reference_text"))
        return plan
    source = "reference" if text_source != "asr" and reference else "asr"
    words = reference if source == "reference" else transcript.words
    if not words:
        plan.rejections.append(Rejection("recording", ref.id, "empty_transcript"))
        return plan
    limit = min(recording.duration, len(recording.face) / recording.fps)
    for planned in plan_spans(words, limit, recording.fps, segment, recording.audio,
                              recording.sample_rate):
        key = make_key(ref.source, ref.speaker, ref.recording, planned.span.index)
        if planned.problem:
            plan.rejections.append(Rejection("clip", key, planned.problem,
                                             f"{planned.span.duration:.2f} s"))
            continue
        audio, face = cut(recording, planned.span)
        meta = clip_meta(key, recording, transcript, planned, reference, source, rms_db(audio))
        problem = check_clip(audio, face, meta.text, meta.asr, meta.wer, rules)
        if problem:
            log.debug("rejected clip %s: %s", key, problem)
            plan.rejections.append(Rejection("clip", key, problem))
            continue
        plan.clips.append(meta)
    return plan


def clip_meta(
    key: str, recording: Recording, transcript: Transcript, planned: PlannedSpan,
    reference: list[Word] | None, text_source: str, rms: float,
) -> ClipMeta:
    """The `json` field of a sample (DESIGN.md "Dataset on disk")."""
    ref, span = recording.ref, planned.span
    asr_text = text_in_span(transcript.words, span)
    reference_text = text_in_span(reference, span) if reference is not None else None
    phones, phones_source = clip_phones(recording.reference_phones, planned.words, span)
    return ClipMeta(
        key=key, text=" ".join(w.word for w in planned.words), text_source=text_source,
        words=words_in_clip(planned.words, span), language=transcript.language,
        speaker=ref.speaker, emotion=ref.emotion, split=ref.split, source=ref.source,
        recording=ref.recording, start=span.start, end=span.end, duration=span.duration,
        sample_rate=recording.sample_rate, fps=recording.fps,
        face_type=recording.face_type, num_frames=span.num_frames, rms_db=round(rms, 2),
        asr=AsrInfo(model=transcript.model, text=asr_text,
                    **asr_stats(transcript.segments, span)),
        reference_text=reference_text,
        wer=None if reference_text is None else round(
            word_error_rate(reference_text, asr_text), 4),
        phones=phones, phones_source=phones_source, custom=dict(recording.custom),
    )


def encode_clip(recording: Recording, meta: ClipMeta) -> dict[str, bytes | str]:
    """One WebDataset sample: cut, validated against the contract, encoded."""
    span = ClipSpan(index=0, start=meta.start, num_frames=meta.num_frames, fps=meta.fps)
    audio, face = cut(recording, span)
    face = np.ascontiguousarray(face, dtype=np.float32)
    validate_clip(audio, face, meta, len(recording.channels))
    return {"__key__": meta.key, "face.npy": shards.npy_bytes(face),
            "flac": flac_bytes(audio, SAMPLE_RATE), "json": shards.json_bytes(meta.to_dict())}


def manifest_row(meta: ClipMeta, shard: ShardRef) -> dict[str, Any]:
    """One `manifest.parquet` row: identity, labels and quality fields of a written clip."""
    return {
        "key": meta.key, "split": meta.split, "shard": shard.name, "speaker": meta.speaker,
        "recording": meta.recording, "start": meta.start, "duration": meta.duration,
        "text": meta.text, "text_source": meta.text_source, "emotion": meta.emotion,
        "num_words": len(meta.words), "asr_avg_logprob": meta.asr.avg_logprob,
        "asr_no_speech_prob": meta.asr.no_speech_prob,
        "asr_compression_ratio": meta.asr.compression_ratio, "rms_db": meta.rms_db,
        "reference_text": meta.reference_text, "wer": meta.wer,
        "phones_source": meta.phones_source,
        **clip_conditions(meta),
    }


def clip_conditions(meta: ClipMeta) -> dict[str, Any]:
    """`voice` and `conditions` (a short label, `clean` or e.g. `babble 12dB+telephone`)
    manifest columns of a clip whose corpus records them in `custom` (the demo corpus)."""
    if "conditions" not in meta.custom:
        return {}
    return {"voice": str(meta.custom.get("voice", "")),
            "conditions": Conditions(**meta.custom["conditions"]).label()}


def write_shard(
    shard: ShardRef, clips: list[tuple[RecordingRef, ClipMeta]], path: Path | Location,
    face_fps_out: float | None = None,
) -> tuple[list[dict[str, Any]], ShardInfo]:
    """Load each recording once, encode its clips in the given order, write the tar whole
    (a local file, or an object in the dataset's storage, written from wherever this
    runs); returns the manifest rows and the shard's record."""
    samples, rows = [], []
    refs = {ref.id: ref for ref, _ in clips}
    for ref in refs.values():
        recording = load_recording(ref, face_fps_out, min_rms_db=-np.inf)
        if isinstance(recording, Rejection):
            raise RuntimeError(f"{ref.id} could be read when transcribed but not now: "
                               f"{recording.detail}")
        for meta in (meta for r, meta in clips if r.id == ref.id):
            samples.append(encode_clip(recording, meta))
            rows.append(manifest_row(meta, shard))
    return rows, shards.write_tar(path, samples)


def one_face_type(results: list[RecordingPlan | Rejection]) -> list[RecordingPlan | Rejection]:
    """A dataset has one face type: recordings of any other (fewer than the most common
    one, ties broken by name) are rejected."""
    kinds = Counter((r.face_type, tuple(r.channels), r.fps) for r in results
                    if isinstance(r, RecordingPlan))
    if len(kinds) <= 1:
        return results
    chosen = min(kinds, key=lambda kind: (-kinds[kind], kind))
    return [r if not isinstance(r, RecordingPlan)
            or (r.face_type, tuple(r.channels), r.fps) == chosen
            else Rejection("recording", r.ref.id, "face_type_mismatch",
                           f"{r.face_type} at {r.fps} fps; the dataset is {chosen[0]} at "
                           f"{chosen[2]} fps") for r in results]
