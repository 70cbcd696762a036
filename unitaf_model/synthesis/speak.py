"""Text → speech + face (`unitaf infer`), by two routes:

- `indextts2`: the UniTAF system itself. IndexTTS2 synthesises the speech
  (`unitaf_model.synthesis.indextts2`), and the face comes from the GPT latents of the very codes it
  generated, through the run's projector and decoder: for a run trained on IndexTTS2 features
  (`tts_latent` / `semantic_codes`). Streamed one text segment at a time.
- `espeak`: an offline cascade, so that the whole flow runs on a machine without IndexTTS2's
  weights. eSpeak NG speaks the text with a demo speaker's voice and an emotion's prosody,
  and the face comes from the audio through the run's audio front end (as `unitaf animate`):
  not the joint path, and for runs trained on the offline audio features.

Both write what `animate` writes, plus NAME.wav.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from unitaf_model.run import LoadedRun

INDEXTTS2_INPUTS = {("tts_latent", "gpt_layer.npy"): "gpt_layer",
                    ("tts_latent", "tts_latent.npy"): "tts_latent",
                    ("semantic_codes", "semantic_codes.npy"): "semantic_codes"}
EMOTION_INPUT = ("emovec", "emovec.npy")  # the residual's input that synthesis gives


def face_model(run: LoadedRun, fps: float | None = None):
    """The run's face path in the form the IndexTTS2 synthesiser streams into, or a clear
    error for a run not driven by IndexTTS2 features."""
    from unitaf_model.synthesis.indextts2 import FaceModel

    inputs = run.info.inputs
    feature = INDEXTTS2_INPUTS.get((inputs["backbone_set"], inputs["backbone_field"]))
    if feature is None:
        raise ValueError(
            f"{run.path} is driven by {inputs['backbone_set']}/{inputs['backbone_field']}, "
            "not by IndexTTS2 features: use `--tts espeak` (or `unitaf animate` on audio)")
    expression = run.info.expression
    if expression is not None and (expression.emotion_set, expression.emotion_field) != \
            EMOTION_INPUT:
        raise ValueError(f"{run.path}'s expression residual reads {expression.emotion_set}/"
                         f"{expression.emotion_field}; IndexTTS2 synthesis gives "
                         f"{'/'.join(EMOTION_INPUT)}, the emotion vector of the speech")

    def face_from_features(features: np.ndarray, emovec: np.ndarray) -> np.ndarray:
        return run.predict(features, emotion=None if expression is None else emovec)

    rest = np.zeros(len(run.info.model.channels), np.float32)  # the rig's neutral pose
    return FaceModel(face_from_features, fps or run.info.face_fps, rest, feature)


def stream_indextts2(run: LoadedRun, synthesizer, text: str, voice: Path, emotion=None,
                     fps: float | None = None, generation=None) -> Iterator:
    """`(wav chunk, face chunk)` per text segment as soon as it is ready (the `Chunk`s of
    `unitaf_model.synthesis.indextts2.stream`, in sync: each face chunk covers its wav chunk)."""
    from unitaf_model.synthesis.indextts2 import Emotion, Generation, stream

    yield from stream(synthesizer, face_model(run, fps), text, voice, emotion or Emotion(),
                      generation or Generation())


def infer_espeak(run: LoadedRun, text: str, out: Path, name: str, speaker: str = "spk01",
                 emotion: str = "neutral", fps: float | None = None, video: bool = False,
                 livelink: str | None = None, subject: str = "unitaf") -> dict[str, Path]:
    """The offline cascade: eSpeak NG speech, then the run's audio → face path (streamed to
    `livelink` HOST:PORT in real time when given)."""
    from unitaf_data.audio import resample
    from unitaf_data.schema import SAMPLE_RATE
    from unitaf_data.sources import demo
    from unitaf_model.synthesis.animate import AudioFrontEnd, animate

    audio, rate = demo.speak(text, speaker, emotion)
    fps = fps or run.info.face_fps
    face = animate(run, AudioFrontEnd(run), resample(audio, rate, SAMPLE_RATE), None, fps)
    written = write_outputs(run, out, name, audio, rate, face, fps, video)
    if livelink:
        from unitaf_model.outputs.livelink import stream_face

        stream_face(livelink, [face], run.info.model.channels, fps, subject, (audio, rate))
    return written


def write_outputs(run: LoadedRun, out: Path, name: str, audio: np.ndarray, rate: int,
                  face: np.ndarray, fps: float, video: bool) -> dict[str, Path]:
    """NAME.wav and every export of the face (NAME.mp4 with `video`)."""
    import soundfile as sf

    from unitaf_model.outputs.exports import write_exports
    from unitaf_model.synthesis.animate import export_formats

    formats = export_formats(run, video)
    out.mkdir(parents=True, exist_ok=True)
    wav = out / f"{name}.wav"
    sf.write(wav, audio, rate, subtype="PCM_16")
    return {"wav": wav, **write_exports(out, name, face, run.info.model.channels, fps,
                                        run.rig, audio, rate, formats,
                                        track_path=str(wav.resolve()))}


def infer_indextts2(run: LoadedRun, synthesizer, text: str, voice: Path, out: Path,
                    name: str, emotion=None, fps: float | None = None, video: bool = False,
                    generation=None, on_chunk: Callable | None = None,
                    livelink: str | None = None, subject: str = "unitaf",
                    stream: bool = False) -> dict[str, Path]:
    """The joint path, streamed; `on_chunk(chunk)` sees each segment as it arrives. With
    `livelink` (HOST:PORT) the face goes there in real time: each segment's frames as soon as
    it is ready with `stream`, else the whole face once synthesised."""
    from contextlib import nullcontext

    from unitaf_model.outputs.livelink import LiveLinkStream
    from unitaf_model.synthesis.indextts2 import SAMPLE_RATE

    fps = fps or run.info.face_fps
    channels = run.info.model.channels
    chunks = []
    live = LiveLinkStream(livelink, channels, fps, subject) if livelink else nullcontext()
    with live:
        for chunk in stream_indextts2(run, synthesizer, text, voice, emotion, fps, generation):
            chunks.append(chunk)
            if on_chunk is not None:
                on_chunk(chunk)
            if livelink and stream:
                live.put(chunk.face)
        if livelink and not stream:
            live.put(np.concatenate([c.face for c in chunks]))
    return write_outputs(run, out, name, np.concatenate([c.wav for c in chunks]),
                         SAMPLE_RATE, np.concatenate([c.face for c in chunks]), fps, video)
