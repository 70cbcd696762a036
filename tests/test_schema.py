import numpy as np
import pytest

from unitaf_data.schema import make_key, validate_clip


def test_key_has_no_dot_or_slash_and_pads_the_clip_index():
    key = make_key("beat2", "2_scott", "0.1/speech", 7)
    assert key == "beat2-2_scott-0_1_speech-0007"


def _meta(frames: int, samples_fps: float = 30.0) -> dict:
    return {"sample_rate": 16000, "fps": samples_fps, "duration": frames / samples_fps,
            "words": [{"word": "hi", "start": 0.1, "end": 0.3}]}


def test_validate_clip_accepts_the_alignment_contract():
    validate_clip("k", np.zeros(round(30 * 16000 / 30)), np.zeros((30, 51), np.float32),
                  _meta(30), 51)


def test_validate_clip_names_the_key_when_audio_and_face_disagree():
    with pytest.raises(AssertionError, match="clip-9"):
        validate_clip("clip-9", np.zeros(16000 + 5), np.zeros((30, 51), np.float32),
                      _meta(30), 51)


def test_validate_clip_rejects_a_word_outside_the_clip():
    meta = _meta(30) | {"words": [{"word": "late", "start": 0.9, "end": 1.2}]}
    with pytest.raises(AssertionError, match="outside the clip"):
        validate_clip("k", np.zeros(16000), np.zeros((30, 51), np.float32), meta, 51)
