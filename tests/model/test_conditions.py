"""Listening conditions of `unitaf eval --conditions`: the degradations measured on signals
whose answer is known, and the ground truth of a clip with a leading noise-only second (the
noise and channel themselves are tested with `unitaf_data.conditions`)."""

from __future__ import annotations

import numpy as np
import pytest

from unitaf_model.evaluation import conditions
from unitaf_model.evaluation.evaluate import Truth

RATE = 16000


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _sine(hz: float, seconds: float = 1.0, amplitude: float = 0.3) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * hz * np.arange(round(seconds * RATE)) / RATE)
            ).astype(np.float32)


@pytest.mark.parametrize("snr", [20.0, 10.0])
def test_noise_is_mixed_at_the_requested_snr(snr):
    speech = _sine(440.0, 2.0)
    noisy = conditions.degrade(speech, f"noise{snr:g}", np.random.default_rng(0)).audio
    assert len(noisy) == len(speech)
    measured = 20 * np.log10(_rms(speech) / _rms(noisy - speech))
    assert measured == pytest.approx(snr, abs=1e-3)


def test_telephone_keeps_the_voice_band_and_removes_what_lies_outside():
    def channel(audio):
        return conditions.degrade(audio, "telephone", np.random.default_rng(0)).audio

    assert _rms(channel(_sine(1000.0))) == pytest.approx(_rms(_sine(1000.0)), rel=0.02)
    assert _rms(channel(_sine(100.0))) < 0.01 * _rms(_sine(100.0))
    assert _rms(channel(_sine(6000.0))) < 0.01 * _rms(_sine(6000.0))
    assert len(channel(_sine(1000.0, 1.2345))) == len(_sine(1000.0, 1.2345))


def test_lead_silence_puts_a_second_of_noise_alone_before_the_speech():
    speech = _sine(300.0, 2.0)
    found = conditions.degrade(speech, "lead_silence", np.random.default_rng(2))
    assert found.lead_seconds == 1.0 and len(found.audio) == len(speech) + RATE
    lead = found.audio[:RATE]
    assert 20 * np.log10(_rms(speech) / _rms(lead)) == pytest.approx(20.0, abs=0.5)
    np.testing.assert_array_equal(
        conditions.degrade(speech, "clean", np.random.default_rng(2)).audio, speech)


def test_degradations_are_seeded():
    speech = _sine(300.0)
    for name in ("noise10", "lead_silence"):
        a = conditions.degrade(speech, name, np.random.default_rng([0, 1, 2])).audio
        b = conditions.degrade(speech, name, np.random.default_rng([0, 1, 2])).audio
        c = conditions.degrade(speech, name, np.random.default_rng([0, 1, 3])).audio
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)


def test_a_condition_draws_its_noise_by_name_not_by_its_place_in_the_list():
    speech = _sine(300.0)
    alone = conditions.degrade(speech, "noise10", conditions.condition_rng(0, "noise10", 4))
    again = conditions.degrade(speech, "noise10", conditions.condition_rng(0, "noise10", 4))
    np.testing.assert_array_equal(alone.audio, again.audio)
    for other in (conditions.condition_rng(0, "noise20", 4),  # another condition,
                  conditions.condition_rng(0, "noise10", 5),  # clip
                  conditions.condition_rng(1, "noise10", 4)):  # or seed
        assert not np.array_equal(alone.audio,
                                  conditions.degrade(speech, "noise10", other).audio)


def test_unknown_conditions_are_named():
    assert conditions.parse_conditions("clean, noise10,clean") == ["clean", "noise10"]
    with pytest.raises(ValueError, match="noise5.*known: clean"):
        conditions.parse_conditions("clean,noise5")
    with pytest.raises(ValueError, match="unknown condition"):
        conditions.degrade(_sine(100.0), "underwater", np.random.default_rng(0))


def test_a_leading_second_holds_the_first_frame_and_moves_the_phones():
    face = np.arange(12, dtype=np.float32).reshape(4, 3)
    truth = Truth("k", "spk", face, np.zeros(10), [(0.1, 0.2)], True,
                  words=[("map", 0.1, 0.3)], phones=[("m", 0.1, 0.2)], phones_source="corpus",
                  emotion="happy")
    moved = conditions._shifted(truth, 1.0, 10.0)
    assert moved.face.shape == (14, 3)
    np.testing.assert_array_equal(moved.face[:10], np.repeat(face[:1], 10, 0))
    np.testing.assert_array_equal(moved.face[10:], face)
    assert moved.phones == [("m", 1.1, 1.2)] and moved.bilabials == [(1.1, 1.2)]
    assert moved.words == [("map", 1.1, 1.3)]
    assert moved.emotion == "happy"
