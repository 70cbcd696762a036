import json

import numpy as np
import pytest

from unitaf_data.face import ARKIT51
from unitaf_data.sources import demo
from unitaf_data.testing import bilabial_closure_agreement, lip_closed_frames

pytest.importorskip("espeakng_loader")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return demo.prepare(tmp_path_factory.mktemp("corpus"), minutes=0.7, seed=5)


def test_plan_is_deterministic_and_holds_out_val_and_test():
    plans = demo.plan_corpus(2.0, seed=1)
    assert plans == demo.plan_corpus(2.0, seed=1)
    assert {p.split for p in plans} == {"train", "val", "test"}
    assert {p.emotion for p in plans} <= set(demo.EMOTIONS)


def test_bilabials_close_the_lips_and_nothing_else_does(corpus):
    for ref in demo.discover(corpus):
        timeline = json.loads((corpus / f"{ref.recording}.timeline.json").read_text())
        face = np.load(ref.face_path)
        assert face.shape[1] == 51 and face.dtype == np.float32
        assert face.min() >= 0.0 and face.max() <= 1.0
        closed = lip_closed_frames(face, ARKIT51.channels)
        recall, precision = bilabial_closure_agreement(closed, timeline["phonemes"], demo.FPS)
        assert recall == 1.0 and precision >= 0.95, ref.recording


def test_open_vowels_open_the_jaw_more_than_bilabials(corpus):
    ref = demo.discover(corpus)[0]
    timeline = json.loads((corpus / f"{ref.recording}.timeline.json").read_text())
    jaw = np.load(ref.face_path)[:, ARKIT51.index("JawOpen")]

    def mean_jaw(first_letters):
        frames = [round((s + e) / 2 * demo.FPS) for lab, s, e in timeline["phonemes"]
                  if lab.lstrip("',")[:1] in first_letters and e - s > 0.05]
        return jaw[frames].mean()

    assert mean_jaw("aA") > mean_jaw("pbm") + 0.2


def test_corpus_is_reproducible_by_seed(corpus, tmp_path):
    again = demo.prepare(tmp_path / "again", minutes=0.7, seed=5)
    for path in sorted(corpus.glob("rec*")):
        assert path.read_bytes() == (again / path.name).read_bytes(), path.name


def test_discover_and_load_give_16k_audio_and_reference_words(corpus):
    refs = demo.discover(corpus)
    assert [r.id for r in refs] == sorted(r.id for r in refs)
    recording = demo.load(refs[0])
    assert recording.sample_rate == 16000 and recording.audio.dtype == np.float32
    assert abs(len(recording.face) / recording.fps - recording.duration) < 0.05
    assert recording.reference_words and recording.reference_words[0].word
