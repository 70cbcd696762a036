from dataclasses import replace

import numpy as np

from unitaf_data.quality import QualityRules, check_clip
from unitaf_data.schema import AsrInfo
from unitaf_data.text import normalize_text, word_error_rate

GOOD_ASR = AsrInfo("tiny.en", "hello", avg_logprob=-0.2, no_speech_prob=0.1,
                   compression_ratio=1.4)


def test_wer_ignores_case_and_punctuation():
    assert normalize_text("Good morning, my Friends!") == "good morning my friends"
    assert word_error_rate("Bob made a pie.", "bob made a pie") == 0.0
    assert word_error_rate("Bob made a pie", "Mob made a pie") == 0.25


def _speech():
    return (0.1 * np.sin(np.arange(16000) / 5)).astype(np.float32)


def test_quality_rules_name_their_reason():
    rules, face = QualityRules(), np.zeros((30, 51), np.float32)
    assert check_clip(_speech(), face, "hello", GOOD_ASR, None, rules) is None
    assert check_clip(_speech(), face, " ", GOOD_ASR, None, rules) == "empty_transcript"
    assert check_clip(np.zeros(16000, np.float32), face, "hi", GOOD_ASR, None,
                      rules) == "silent_audio"
    bad_face = face.copy()
    bad_face[3, 4] = np.nan
    assert check_clip(_speech(), bad_face, "hi", GOOD_ASR, None, rules) == "face_not_finite"
    on_silence = replace(GOOD_ASR, no_speech_prob=0.9, avg_logprob=-1.5)
    assert check_clip(_speech(), face, "hi", on_silence, None, rules) == "asr_text_on_silence"
    looping = replace(GOOD_ASR, compression_ratio=3.1)
    assert check_clip(_speech(), face, "hi", looping, None, rules) == "asr_repetition"
