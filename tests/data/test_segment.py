import numpy as np

from unitaf_data.schema import ClipSpan, Recording, RecordingRef, Word
from unitaf_data.segment import SegmentSettings, cut, phrases, plan_spans, split_long

FPS = 30.0


def _words(spec):
    return [Word(f"w{i}", s, e) for i, (s, e) in enumerate(spec)]


def test_phrases_break_only_at_pauses_of_min_length():
    words = _words([(0.0, 0.4), (0.45, 0.9), (1.3, 1.7)])
    assert [len(p) for p in phrases(words, 0.2)] == [2, 1]


def test_spans_start_on_frame_boundaries_and_never_cut_a_word():
    words = _words([(0.43, 1.0), (1.05, 2.4), (2.9, 4.1), (4.2, 6.0), (6.8, 8.9), (9.5, 11.0)])
    settings = SegmentSettings(min_seconds=1.0, max_seconds=5.0)
    planned = plan_spans(words, limit=11.5, fps=FPS, settings=settings)
    assert len(planned) >= 2
    for previous, current in zip(planned, planned[1:], strict=False):
        assert previous.span.end <= current.span.start + 1e-9
    for item in planned:
        span = item.span
        assert abs(span.start * FPS - round(span.start * FPS)) < 1e-6
        assert span.start <= item.words[0].start and item.words[-1].end <= span.end + 1e-9
        for word in words:  # no word straddles a boundary
            assert not (word.start < span.start < word.end)
            assert not (word.start < span.end < word.end)


def test_a_phrase_without_pauses_is_split_at_its_widest_gap():
    words = _words([(0.0, 4.0), (4.05, 8.0), (8.15, 12.0), (12.2, 16.0), (16.1, 19.0)])
    parts = split_long(words, 10.0)
    # widest gap (0.2 s, before w3) first, then the widest left in the 12 s part (before w2)
    assert [[w.word for w in p] for p in parts] == [["w0", "w1"], ["w2"], ["w3", "w4"]]


def test_short_groups_are_reported_too_short():
    planned = plan_spans(_words([(0.5, 0.9)]), limit=3.0, fps=FPS, settings=SegmentSettings())
    assert planned[0].problem == "too_short"


def test_cut_takes_the_same_instant_from_audio_and_face():
    ref = RecordingRef("demo", "s", "r", "train", "a.wav", "f.npy")
    audio = np.arange(16000 * 4, dtype=np.float32)
    face = np.repeat(np.arange(120, dtype=np.float32)[:, None], 2, axis=1)
    recording = Recording(ref, audio, 16000, face, "arkit51", ("a", "b"), FPS)
    span = ClipSpan(index=0, start=1.0, num_frames=45, fps=FPS)
    clip_audio, clip_face = cut(recording, span)
    assert clip_face[0, 0] == 30 and len(clip_face) == 45
    assert clip_audio[0] == 16000 and len(clip_audio) == round(45 * 16000 / FPS)


def test_cuts_fall_in_the_real_silence_even_when_word_times_are_late():
    sr = 16000
    audio = np.zeros(sr * 6, np.float32)
    speech = 0.3 * np.sin(np.arange(sr) * 0.3).astype(np.float32)
    audio[int(0.5 * sr) : int(1.5 * sr)] = speech  # first phrase 0.5-1.5 s
    audio[int(3.0 * sr) : int(4.0 * sr)] = speech  # second phrase 3.0-4.0 s
    late = _words([(0.5, 1.5), (3.4, 4.0)])  # the ASR puts the second word 0.4 s late
    planned = plan_spans(late, limit=6.0, fps=FPS,
                         settings=SegmentSettings(min_seconds=0.5, max_seconds=2.5, pad=0.15),
                         audio=audio, sample_rate=sr)
    second = planned[1].span
    assert 2.8 <= second.start <= 3.0  # before the real onset, not 0.15 s before 3.4
    assert planned[0].span.end <= 1.7 and planned[0].span.end <= second.start
