"""Phone intervals: read from a corpus (demo timeline, TextGrid phone tier), estimated from
word times with the CMU dictionary, cut to clips, and set in the clip json."""

from __future__ import annotations

import json

import numpy as np
import pytest
from praatio import textgrid
from praatio.utilities.constants import Interval

from unitaf_data import stages
from unitaf_data.phones import (
    clip_phones,
    estimate_phones,
    is_bilabial,
    is_pause,
    phones_from_events,
    phones_in_clip,
    pronounce,
    read_textgrid_phones,
)
from unitaf_data.schema import (
    AsrSegment,
    ClipMeta,
    ClipSpan,
    Phone,
    Recording,
    RecordingRef,
    Transcript,
    Word,
    validate_clip,
)
from unitaf_data.segment import PlannedSpan, words_in_clip

EVENTS = [["_", 0.0, 0.4], ["b", 0.4, 0.47], ["'0", 0.47, 0.6], ["b", 0.6, 0.68],
          ["_:", 0.68, 0.9], ["m", 0.9, 0.98], ["'0", 0.98, 1.1], ["m", 1.1, 1.1874],
          ["_", 1.1874, 1.5]]


def test_timeline_events_cut_to_a_clip_are_relative_clamped_and_without_pauses():
    span = ClipSpan(index=0, start=0.5, num_frames=18, fps=30.0)  # [0.5, 1.1)
    phones = phones_in_clip(phones_from_events(EVENTS), span)
    assert phones == (Phone("'0", 0.0, 0.1), Phone("b", 0.1, 0.18), Phone("m", 0.4, 0.48),
                      Phone("'0", 0.48, 0.6))  # "b" before and "m" after lie outside


def test_clip_phones_are_rounded_to_milliseconds_like_the_words():
    span = ClipSpan(index=0, start=1.0, num_frames=6, fps=30.0)
    phones = phones_in_clip(phones_from_events(EVENTS), span)
    words = words_in_clip([Word("mom", 0.9, 1.1874)], span)
    assert phones[-1] == Phone("m", 0.1, 0.187) and words[0].end == phones[-1].end


@pytest.mark.parametrize("event", [["b", 0.5, 0.4], ["b", -0.1, 0.2], [3, 0.1, 0.2],
                                   ["b", 0.1], ["b", 0.1, float("nan")], ["b", True, 0.2]])
def test_a_malformed_timeline_event_is_refused_naming_it(event):
    with pytest.raises(ValueError, match=r"phonemes\[1\]"):
        phones_from_events([["_", 0.0, 0.1], event])


def test_a_textgrid_phone_tier_is_read_in_order_with_its_own_labels(tmp_path):
    grid = textgrid.Textgrid()
    grid.addTier(textgrid.IntervalTier("speaker1 - words", [Interval(0.1, 0.5, "bob")], 0, 1))
    grid.addTier(textgrid.IntervalTier("speaker1 - phones", [
        Interval(0.0, 0.1, "sil"), Interval(0.1, 0.2, "B"), Interval(0.2, 0.4, "AA1"),
        Interval(0.4, 0.5, "B")], 0, 1))
    path = tmp_path / "take.TextGrid"
    grid.save(str(path), format="short_textgrid", includeBlankSpaces=True)
    phones = read_textgrid_phones(path)
    assert phones == [Phone("sil", 0.0, 0.1), Phone("B", 0.1, 0.2), Phone("AA1", 0.2, 0.4),
                      Phone("B", 0.4, 0.5)]
    span = ClipSpan(index=0, start=0.0, num_frames=30, fps=30.0)
    assert [p.phone for p in phones_in_clip(phones, span)] == ["B", "AA1", "B"]


def test_a_textgrid_without_a_phone_tier_or_no_textgrid_gives_none(tmp_path):
    grid = textgrid.Textgrid()
    grid.addTier(textgrid.IntervalTier("words", [Interval(0.1, 0.5, "bob")], 0, 1))
    grid.save(str(tmp_path / "words.TextGrid"), format="long_textgrid",
              includeBlankSpaces=True)
    assert read_textgrid_phones(tmp_path / "words.TextGrid") is None
    assert read_textgrid_phones(tmp_path / "missing.TextGrid") is None


def test_bob_is_estimated_as_its_three_phones_filling_the_word_in_order():
    phones = estimate_phones([Word("Bob,", 0.5, 0.825)])
    # weights 1 : 1.25 : 1 over 0.325 s
    expected = [("B", 0.5, 0.6), ("AA1", 0.6, 0.725), ("B", 0.725, 0.825)]
    assert [p.phone for p in phones] == [label for label, _, _ in expected]
    np.testing.assert_allclose([(p.start, p.end) for p in phones],
                               [(s, e) for _, s, e in expected], atol=1e-12)


def test_estimated_phones_mark_the_bilabials_of_each_word_and_skip_unknown_words():
    words = [Word("Bring", 0.0, 0.4), Word("zxqvwk", 0.4, 0.7), Word("the", 0.7, 0.8),
             Word("map", 0.8, 1.2)]
    phones = estimate_phones(words)
    assert [p.phone for p in phones] == ["B", "R", "IH1", "NG", "DH", "AH0", "M", "AE1", "P"]
    bilabials = [p for p in phones if is_bilabial(p.phone)]
    assert [p.phone for p in bilabials] == ["B", "M", "P"]
    assert 0.0 <= bilabials[0].start < bilabials[0].end <= 0.4
    assert all(0.8 <= p.start < p.end <= 1.2 for p in bilabials[1:])
    assert not any(0.4 < (p.start + p.end) / 2 < 0.7 for p in phones)


def test_words_run_together_are_pronounced_as_all_their_words():
    assert pronounce("a lot") == ("AH0", "L", "AA1", "T")
    assert pronounce("well-known") == ("W", "EH1", "L", "N", "OW1", "N")
    assert pronounce("mom zxqvwk") is None and pronounce("...") is None


@pytest.mark.parametrize("label", ["P", "B", "M", "p", "'b", ",m", "pʰ", "ˈm"])
def test_bilabials_of_every_label_set_are_recognised(label):
    assert is_bilabial(label) and not is_pause(label)


@pytest.mark.parametrize("label", ["_", "_:", "sil", "SP", "spn", "pau", "", "AA1", "'aI", "n",
                                   "F"])
def test_pauses_and_other_phones_are_not_bilabials(label):
    assert not is_bilabial(label)


def _recording(reference_phones: list[Phone] | None) -> Recording:
    ref = RecordingRef("folder", "alice", "take1", "train", "take1.wav", "take1.npy")
    return Recording(ref=ref, audio=np.zeros(32_000, np.float32), sample_rate=16_000,
                     face=np.zeros((60, 51), np.float32), face_type="arkit51",
                     channels=tuple(f"c{i}" for i in range(51)), fps=30.0,
                     reference_phones=reference_phones)


def _clip_meta(recording: Recording, words: list[Word]) -> ClipMeta:
    span = ClipSpan(index=0, start=0.2, num_frames=30, fps=30.0)  # [0.2, 1.2)
    transcript = Transcript(words=words, segments=[AsrSegment(0.0, 2.0, "", -0.2, 0.01, 1.1)],
                            language="en", model="tiny.en")
    meta = stages.clip_meta("folder-alice-take1-0000", recording, transcript,
                            PlannedSpan(span, tuple(words)), None, "asr", -20.0)
    audio, face = stages.cut(recording, span)
    validate_clip(audio, face, meta, 51)
    return ClipMeta.from_dict(json.loads(json.dumps(meta.to_dict())))


def test_a_recording_with_corpus_phones_gives_its_clips_corpus_phones():
    meta = _clip_meta(_recording(phones_from_events(EVENTS)), [Word("bob", 0.4, 0.68)])
    assert meta.phones_source == "corpus"
    assert [p.phone for p in meta.phones] == ["b", "'0", "b", "m", "'0", "m"]


def test_a_recording_without_phones_gets_them_estimated_from_the_clip_words():
    meta = _clip_meta(_recording(None), [Word("bob", 0.4, 0.725), Word("mom", 0.9, 1.1)])
    assert meta.phones_source == "estimated"
    assert [p.phone for p in meta.phones] == ["B", "AA1", "B", "M", "AA1", "M"]
    assert meta.phones[0].start == pytest.approx(0.2) and meta.phones[-1].end == 0.9


def test_a_clip_without_corpus_phones_or_known_words_has_no_phones():
    meta = _clip_meta(_recording(None), [Word("zxqvwk", 0.4, 0.7)])
    assert meta.phones is None and meta.phones_source is None
    assert "phones" not in meta.to_dict() and "phones_source" not in meta.to_dict()
    assert clip_phones([Phone("_", 0.0, 2.0)], [], ClipSpan(0, 0.2, 30, 30.0)) == (None, None)


def test_demo_phones_have_the_bilabials_the_dictionary_gives_each_sentence(tmp_path):
    """The synthesiser's phonemes against the CMU pronunciations of the same sentences: two
    independent sources of /p b m/ that agree on every demo sentence tried."""
    pytest.importorskip("espeakng_loader")
    from unitaf_data.sources import demo

    corpus = demo.prepare(tmp_path, minutes=0.3, seed=5)
    for ref in demo.discover(corpus):
        recording = demo.load(ref)
        timeline = json.loads((corpus / f"{ref.recording}.timeline.json").read_text())
        assert recording.reference_phones == phones_from_events(timeline["phonemes"])
        for sentence, start, end in timeline["sentences"]:
            spoken = [p for p in recording.reference_phones
                      if start <= p.start < end and is_bilabial(p.phone)]
            expected = [x for word in sentence.split() for x in pronounce(word)
                        if is_bilabial(x)]
            assert len(spoken) == len(expected) > 0, sentence
