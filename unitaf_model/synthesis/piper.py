"""The joint path with the Piper voice: speech and face from the same synthesis pass.

Each sentence of the text is spoken by the Piper voice (`unitaf_data.piper`), and the very
features that synthesis returned (its decoder-input latent or its expanded text-encoder
states, whichever the run was trained on: `piper_latent` / `piper_encoder`) go onto the 50 Hz
grid exactly as the `piper_latent` extraction puts them, as float16 as the sidecars store
them, through the run's projector and decoder. No audio is analysed: the face is computed from
the TTS's own features.

Sync: sentences follow each other with no gap (Piper's own leading and trailing silences are
in the speech), chunk k covers samples [start_k, end_k) of the utterance, and its face holds
the frames i with round(start_k · fps / sr) ≤ i < round(end_k · fps / sr), frame i being the
model's face at time i / fps (as `unitaf animate` samples it). The chunks tile the
utterance: exactly round(duration · fps) frames for its wav, and the concatenated stream is
the whole synthesis. Timings per chunk give the real-time factor.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from unitaf_model.run import LoadedRun

PIPER_INPUTS = {("piper_latent", "piper_latent.npy"): "latent",
                ("piper_latent", "piper_encoder.npy"): "encoder_states"}
FEATURE_RATE = 50.0  # Hz: the grid every feature set is stored on
DATA_SAMPLE_RATE = 16000  # the clips' audio rate, which fixes T50 = round(samples / 320)


@dataclass
class PiperChunk:
    """One sentence as streamed: its speech and its face."""

    index: int
    phonemes: str
    wav: np.ndarray  # float32 (samples,) at the voice's sample rate
    face: np.ndarray  # float32 (frames, C) at `fps`
    start_sample: int  # of this chunk in the whole utterance
    first_frame: int  # of this chunk's face in the whole utterance
    ready_s: float  # seconds from the start of the stream until this chunk was ready
    speech_s: float  # seconds spent on its speech (Piper, features included)
    face_s: float  # seconds spent on its face (projector + decoder)


def feature_of(run: LoadedRun) -> str:
    """Which Piper feature drives the run, or a clear error for a run of other features."""
    inputs = run.info.inputs
    feature = PIPER_INPUTS.get((inputs["backbone_set"], inputs["backbone_field"]))
    if feature is None:
        raise ValueError(
            f"{run.path} is driven by {inputs['backbone_set']}/{inputs['backbone_field']}, "
            "not by the Piper voice's features (piper_latent): `--tts piper` needs a run "
            "trained on them (configs/piper_stage*.yaml); for a run on audio features use "
            "`--tts espeak` or `unitaf animate`")
    if run.info.expression is not None:
        raise ValueError(f"{run.path} has an expression residual, which reads an emotion "
                         "embedding the Piper voice does not give")
    return feature


def sentence_features(speech, feature: str) -> np.ndarray:
    """A sentence's feature on the 50 Hz grid of its 16 kHz audio, float16 (as extracted)."""
    from unitaf_data.piper import span_features

    frames = round(round(speech.duration * DATA_SAMPLE_RATE) / (DATA_SAMPLE_RATE
                                                                / FEATURE_RATE))
    return span_features(speech, 0.0, speech.duration, frames)[feature].astype(np.float16)


def chunk_face(model_face: np.ndarray, model_fps: float, start_sample: int, samples: int,
               sample_rate: int, fps: float) -> np.ndarray:
    """The utterance's frames that fall in samples [start, start + samples): frame i, at
    time i / fps, from the chunk's model face (frame k at k / model_fps into the chunk),
    linearly interpolated, held at the ends."""
    first = round(start_sample * fps / sample_rate)
    last = round((start_sample + samples) * fps / sample_rate)
    times = np.arange(first, last) / fps - start_sample / sample_rate
    grid = np.arange(len(model_face)) / model_fps
    return np.stack([np.interp(times, grid, column) for column in model_face.T],
                    axis=1).astype(np.float32).reshape(len(times), model_face.shape[1])


def stream(voice, run: LoadedRun, text: str, seed: int = 0, fps: float | None = None
           ) -> Iterator[PiperChunk]:
    """Speech and face of `text`, one chunk per sentence as soon as it is ready."""
    from unitaf_data.piper import PAD, speak_sentences

    feature, fps = feature_of(run), fps or run.info.face_fps
    start, start_sample, index = time.perf_counter(), 0, -1
    spoken = speak_sentences(voice, text, seed)
    while True:
        began = time.perf_counter()
        speech = next(spoken, None)
        if speech is None:
            break
        index += 1
        features = sentence_features(speech, feature)
        faced = time.perf_counter()
        face = chunk_face(run.predict(features), run.info.fps, start_sample, len(speech.wav),
                          speech.sample_rate, fps)
        done = time.perf_counter()
        yield PiperChunk(index=index, phonemes="".join(s for s in speech.symbols if s != PAD),
                         wav=speech.wav, face=face, start_sample=start_sample,
                         first_frame=round(start_sample * fps / speech.sample_rate),
                         ready_s=done - start, speech_s=faced - began, face_s=done - faced)
        start_sample += len(speech.wav)
    if index < 0:
        raise ValueError(f"eSpeak NG gave no phonemes the Piper voice knows for {text!r}")
