import numpy as np
import pytest

from unitaf_data import stages
from unitaf_data.asr import AsrSettings, Transcriber
from unitaf_data.quality import QualityRules
from unitaf_data.schema import RecordingRef, Rejection
from unitaf_data.segment import SegmentSettings
from unitaf_data.sources import demo

pytest.importorskip("espeakng_loader")


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    corpus = demo.prepare(tmp_path_factory.mktemp("corpus"), minutes=0.3, seed=2)
    return stages.load_recording(demo.discover(corpus)[0])


@pytest.fixture(scope="module")
def transcript(recording):
    return Transcriber(AsrSettings(cpu_threads=2)).transcribe(recording.audio)


def test_offline_asr_gives_ordered_word_times_and_segment_stats(recording, transcript):
    assert transcript.model == "tiny.en" and transcript.language == "en"
    starts = [w.start for w in transcript.words]
    assert starts == sorted(starts) and len(starts) > 10
    assert all(0 <= w.start <= w.end <= recording.duration + 0.5 for w in transcript.words)
    assert all(s.compression_ratio > 0 for s in transcript.segments)


def test_plan_recording_keeps_clips_within_bounds_with_reference_wer(recording, transcript):
    settings = SegmentSettings(min_seconds=1.0, max_seconds=8.0)
    plan = stages.plan_recording(recording, transcript, settings, QualityRules())
    assert plan.clips
    for meta in plan.clips:
        assert 1.0 <= meta.duration <= 8.0 + 1 / 30
        assert meta.wer <= 0.5 and meta.reference_text
        sample = stages.encode_clip(recording, meta)  # validates the contract
        assert set(sample) == {"__key__", "flac", "face.npy", "json"}


def test_unreadable_audio_becomes_a_rejection(tmp_path):
    (tmp_path / "x.wav").write_bytes(b"not audio")
    ref = RecordingRef("demo", "s", "x", "train", str(tmp_path / "x.wav"),
                       str(tmp_path / "x.face.npy"),
                       extra={"timeline_path": str(tmp_path / "x.timeline.json")})
    result = stages.load_recording(ref)
    assert isinstance(result, Rejection) and result.reason == "unreadable"


def test_face_audio_mismatch_over_a_tenth_of_a_second_rejects(recording, monkeypatch):
    longer = np.concatenate([recording.face, recording.face[:10]])
    monkeypatch.setattr(demo, "load", lambda ref: type(recording)(
        **{**recording.__dict__, "face": longer}))
    result = stages.load_recording(recording.ref)
    assert isinstance(result, Rejection) and result.reason == "face_audio_length_mismatch"
