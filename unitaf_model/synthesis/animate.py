"""Audio → face with a trained run: the run's input computed from audio alone (its front end),
the model, and the face on the output frame grid.

A run remembers how its input was made (`RunInfo.front_end`): the offline Whisper `tiny.en`
encoder states (`whisper`), or their k-means codes (`units`, with the centroids saved in the
run). Those are recomputed here from any audio, exactly as extraction computed them (clip-
length encoding, float16 storage), so a run animates audio it never saw without its dataset.
Runs trained on features that need text or a TTS (IndexTTS2's `tts_latent`, `semantic_codes`)
are refused with the command that can run them (`unitaf infer`). A run with an expression
residual (stage III) also reads the clip's emotion embedding: the offline `utterance`
embedding (mean and std over time of the same encoder states) is computed here too.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from unitaf_data.face import resample_face
from unitaf_data.schema import SAMPLE_RATE
from unitaf_model.run import LoadedRun

log = logging.getLogger(__name__)

AUDIO_WINDOW_SECONDS = 20.0  # Whisper's encoder sees at most 30 s: longer audio in windows


def check_audio_front_end(run: LoadedRun) -> None:
    """A clear error when the run's input cannot be computed from audio alone."""
    front, expression = run.info.front_end, run.info.expression
    if expression is not None and expression.emotion_set != "utterance":
        raise ValueError(f"{run.path}'s expression residual reads the '{expression.emotion_set}'"
                         " emotion embedding, which `unitaf animate` cannot compute from audio "
                         "alone (it computes the offline `utterance` embedding)")
    if front["backend"] == "offline" and front["set"] in ("whisper", "units"):
        return
    if front["backend"] == "indextts2":
        raise ValueError(f"{run.path} is driven by IndexTTS2 features ({front['set']}), "
                         "which need text and the TTS: use `unitaf infer --run "
                         f"{run.path} --text ...`")
    raise ValueError(f"{run.path} is driven by the '{front['set']}' features of the "
                     f"{front['backend']} backend, which `unitaf animate` cannot compute "
                     "from audio alone")


class AudioFrontEnd:
    """What the run reads of any 16 kHz audio, as the dataset's sidecars hold it: its input
    features and, for a residual, the emotion embedding (one encoder, loaded once)."""

    def __init__(self, run: LoadedRun) -> None:
        from unitaf_data.features import folder_hashes
        from unitaf_data.features.offline import WhisperEncoder

        check_audio_front_end(run)
        self.set, self.field = run.info.front_end["set"], run.info.front_end["field"]
        self.expression = run.info.expression
        self.encoder = WhisperEncoder()
        recorded = run.info.front_end.get("model", {}).get("files", {})
        if recorded and folder_hashes(self.encoder.path) != recorded:
            log.warning("the Whisper encoder here differs from the one %s was trained with: "
                        "its faces may differ", run.path)
        self.centroids = run.front_end.get("centroids")
        if self.set == "units" and self.centroids is None:
            raise ValueError(f"{run.path} has no front_end.safetensors with its unit centroids")

    def features(self, audio: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        """{set: {field: array}}: the input, (T50,) codes or (T50, 384) states with
        T50 = round(samples / 320), and the residual's emotion embedding (768,)."""
        from unitaf_data.features.offline import utterance_embedding
        from unitaf_data.features.units import nearest

        window = round(AUDIO_WINDOW_SECONDS * SAMPLE_RATE)
        states = np.concatenate([
            self.encoder.encode([audio[start : start + window]])[0]
            for start in range(0, max(len(audio), 1), window)])
        inputs = nearest(states, self.centroids).astype(np.int16) if self.set == "units" \
            else states.astype(np.float16)  # as the sidecars store them
        found = {self.set: {self.field: inputs}}
        if self.expression is not None:
            found.setdefault(self.expression.emotion_set, {})[
                self.expression.emotion_field] = utterance_embedding(states)
        return found


def face_on_grid(run: LoadedRun, features: dict[str, dict[str, np.ndarray]],
                 speaker: str | None, fps: float, frames: int) -> np.ndarray:
    """The run's face for one clip's features (`AudioFrontEnd.features`), on a grid of
    `frames` frames at `fps`."""
    face = run.predict_features(features, speaker)
    return resample_face(face, run.info.fps, fps, frames)


def animate(run: LoadedRun, front_end: AudioFrontEnd, audio: np.ndarray,
            speaker: str | None = None, fps: float | None = None) -> np.ndarray:
    """Face (round(duration × fps), C) for 16 kHz mono audio; `fps` defaults to the run's
    dataset face rate. AudioError (audio_too_short) for audio shorter than one frame."""
    from unitaf_data.audio import AudioError

    fps = fps or run.info.face_fps
    frames = round(len(audio) / SAMPLE_RATE * fps)
    if frames < 1:
        raise AudioError("audio_too_short", f"{len(audio)} samples at {SAMPLE_RATE} Hz: "
                         f"shorter than one face frame at {fps} fps")
    return face_on_grid(run, front_end.features(audio), speaker, fps, frames)


def audio_inputs(path: Path) -> list[tuple[str, Path]]:
    """(export name, file) of one audio file, or of every audio file under a folder (names
    from the relative path, so files of the same name in different folders stay apart)."""
    from unitaf_data.audio import AUDIO_SUFFIXES

    path = Path(path)
    if path.is_file():
        return [(path.stem, path)]
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is neither an audio file nor a folder")
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) in {path}")
    return [("_".join(p.relative_to(path).with_suffix("").parts), p) for p in files]


def animate_file(run: LoadedRun, front_end: AudioFrontEnd, audio_path: Path, out: Path,
                 name: str, speaker: str | None = None, fps: float | None = None,
                 video: bool = False, livelink: str | None = None, subject: str = "unitaf"
                 ) -> dict[str, Path]:
    """One audio file's face in every export format (and the preview video with `video`);
    with `livelink` (HOST:PORT) also streamed there in real time with the audio played."""
    from unitaf_data.audio import load_audio
    from unitaf_model.outputs.exports import write_exports

    audio = load_audio(audio_path, SAMPLE_RATE)
    fps = fps or run.info.face_fps
    face = animate(run, front_end, audio, speaker, fps)
    written = write_exports(out, name, face, run.info.model.channels, fps, run.rig, audio,
                            SAMPLE_RATE, export_formats(run, video),
                            track_path=str(audio_path.resolve()))
    if livelink:
        from unitaf_model.outputs.livelink import stream_face

        stream_face(livelink, [face], run.info.model.channels, fps, subject,
                    (audio, SAMPLE_RATE))
    return written


def export_formats(run: LoadedRun, video: bool) -> list[str]:
    """The export formats of a face from `run`: every file format (the .glb and .usd need a
    rig, the .usd also the `usd` extra), and with `video` the .mp4 preview, which needs a
    rig too."""
    import importlib.util

    from unitaf_model.outputs.exports import FILE_FORMATS, MESH_FORMATS

    formats = [f for f in FILE_FORMATS if run.rig is not None or f not in MESH_FORMATS]
    if "usd" in formats and importlib.util.find_spec("pxr") is None:
        log.info("no .usd export: usd-core is not installed (pip install 'unitaf[usd]')")
        formats.remove("usd")
    if video:
        if run.rig is None:
            raise ValueError(f"{run.path} has no vertex rig to render a video with")
        formats.append("mp4")
    return formats
