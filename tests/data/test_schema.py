import json

import numpy as np
import pytest

from unitaf_data.schema import (
    AsrInfo,
    ClipMeta,
    DatasetInfo,
    FeatureSetInfo,
    Phone,
    RecordError,
    Word,
    make_key,
    validate_clip,
)


def test_key_has_no_dot_or_slash_and_pads_the_clip_index():
    key = make_key("beat2", "2_scott", "0.1/speech", 7)
    assert key == "beat2-2_scott-0_1_speech-0007"


def _meta(frames: int = 30, fps: float = 30.0, **changes) -> ClipMeta:
    fields = dict(
        key="demo-a-b-0000", text="hi there", text_source="asr",
        words=(Word("hi", 0.1, 0.3), Word("there", 0.35, 0.6)), language="en",
        speaker="a", emotion="neutral", split="train", source="demo", recording="b",
        start=1.0, end=1.0 + frames / fps, duration=frames / fps, sample_rate=16000, fps=fps,
        face_type="arkit51", num_frames=frames, rms_db=-20.0,
        asr=AsrInfo("tiny.en", "hi there", -0.2, 0.01, 1.1))
    return ClipMeta(**(fields | changes))


def test_clip_json_round_trips_and_leaves_out_what_is_unknown():
    meta = _meta(phones=(Phone("h", 0.1, 0.2),), phones_source="corpus", wer=0.0,
                 reference_text="hi there")
    data = json.loads(json.dumps(meta.to_dict()))
    assert ClipMeta.from_dict(data) == meta
    assert "custom" not in _meta().to_dict() and "phones" not in _meta().to_dict()


@pytest.mark.parametrize("change, message", [
    ({"extra": 1}, "unknown key"), ({"fps": 0}, "must be positive"),
    ({"num_frames": "30"}, "expected int"), ({"duration": 2.0}, "num_frames / fps"),
    ({"words": [{"word": "x", "start": 0.5, "end": 0.1}]}, "ends"),
    ({"phones": [{"phone": "p", "start": 0, "end": 0.1}]}, "phones_source"),
])
def test_clip_json_that_this_version_does_not_understand_is_refused(change, message):
    data = _meta().to_dict() | change
    with pytest.raises(RecordError, match=message):
        ClipMeta.from_dict(data)


def test_dataset_info_of_another_schema_version_says_to_rebuild():
    info = DatasetInfo("demo", "arkit51", ("a", "b"), 30.0, 16000, {}, {}, {})
    assert DatasetInfo.from_dict(info.to_dict()) == info
    with pytest.raises(RecordError, match="rebuild"):
        DatasetInfo.from_dict(info.to_dict() | {"schema_version": 1})
    with pytest.raises(RecordError, match="distinct"):
        DatasetInfo.from_dict(info.to_dict() | {"channels": ["a", "a"]})


def test_feature_set_fields_must_be_plain_npy_names_of_known_dtypes():
    base = {"name": "x", "backend": "offline", "model": {}, "frame_rate": 50.0, "dims": 4,
            "settings": {}, "shards": {}, "licences": {}, "tool_version": "0", "custom": {},
            "checks": {"clips": 0, "audio_hours": 0.0, "refused": [], "problems": {},
                       "examples": []}}
    good = FeatureSetInfo.from_dict(base | {"fields": {"teacher.npy": {"dtype": "float16",
                                                                       "shape": ["T", 4]}}})
    assert good.input_width("teacher.npy", "precomputed") == 4
    for fields, message in (({"../x.npy": {"dtype": "float16", "shape": ["T"]}}, "field name"),
                            ({"a.npy": {"dtype": "object", "shape": ["T"]}}, "dtype"),
                            ({"a.npy": {"dtype": "int16", "shape": ["T", "T"]}}, "shape")):
        with pytest.raises(RecordError, match=message):
            FeatureSetInfo.from_dict(base | {"fields": fields})


def test_inputs_are_sized_from_their_field_and_a_wrong_kind_is_refused():
    base = {"backend": "indextts2", "model": {}, "frame_rate": 50.0, "settings": {},
            "shards": {}, "licences": {}, "tool_version": "0", "custom": {},
            "checks": {"clips": 0, "audio_hours": 0.0, "refused": [], "problems": {},
                       "examples": []}}
    codes = FeatureSetInfo.from_dict(base | {"name": "semantic_codes", "dims": 8192, "fields": {
        "semantic_codes.npy": {"dtype": "int16", "shape": ["T"]}}})
    latents = FeatureSetInfo.from_dict(base | {"name": "tts_latent", "dims": 1024, "fields": {
        "tts_latent.npy": {"dtype": "float16", "shape": ["T", 1280]},
        "gpt_layer.npy": {"dtype": "float16", "shape": ["T", 1024]}}})
    assert codes.input_width("semantic_codes.npy", "units") == 8192
    assert latents.input_width("tts_latent.npy", "precomputed") == 1280
    with pytest.raises(ValueError, match="not the \\(T, D\\) features"):
        codes.input_width("semantic_codes.npy", "precomputed")
    with pytest.raises(KeyError, match="has no field latent.npy"):
        latents.input_width("latent.npy", "precomputed")


def test_validate_clip_accepts_the_alignment_contract():
    validate_clip(np.zeros(16000), np.zeros((30, 51), np.float32), _meta(), 51)


def test_validate_clip_names_the_key_when_audio_and_face_disagree():
    with pytest.raises(AssertionError, match="demo-a-b-0000"):
        validate_clip(np.zeros(16000 + 5), np.zeros((30, 51), np.float32), _meta(), 51)


def test_validate_clip_rejects_a_word_or_phone_outside_the_clip():
    late = _meta(words=(Word("late", 0.9, 1.2),))
    with pytest.raises(AssertionError, match="outside the clip"):
        validate_clip(np.zeros(16000), np.zeros((30, 51), np.float32), late, 51)
    phone = _meta(phones=(Phone("p", 0.95, 1.1),), phones_source="corpus")
    with pytest.raises(AssertionError, match="outside the clip"):
        validate_clip(np.zeros(16000), np.zeros((30, 51), np.float32), phone, 51)
