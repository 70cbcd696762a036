"""Feature backends for `unitaf-data extract-features`: clip audio (and text) in, arrays out.

A backend computes one or more feature sets from one model pass and is used as:

    backend = make_backend(name, settings)          # loads models once (one per Ray actor)
    outputs = backend.extract(batch)                # per clip {set: {field: array}}, or a
                                                    # refusal "reason: detail" (reason: a
                                                    # short countable code)
    backend.describe()                              # what goes into feature.json

Feature sets and the backend that makes them:

| set | backend | fields |
|---|---|---|
| `whisper` | `offline` | `teacher.npy` float16 (T50, 384): Whisper tiny.en encoder states |
| `units` | `offline` | `units.npy` int16 (T50,): k-means codes of those states (`fit-units`) |
| `utterance` | `offline` | `utterance.npy` float16 (768,): mean and std over time of those states |
| `whisper_aug` | `offline` | `teacher_{c}.npy`, `utterance_{c}.npy`, `face_{c}.npy`: copy c |
| `unitalker` | `unitalker` | `teacher.npy` float16 (T50, 768/1024): UniTalker audio encoder |
| `semantic_codes`, `spk_cond`, `emovec`, `tts_latent` | `indextts2` | see `features.indextts2` |
| `piper_latent` | `piper` | `piper_latent.npy`, `piper_encoder.npy` float16 (T50, 192) |

`whisper_aug` holds augmented copies of each train clip (`--augment N`, `features.augment`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unitaf_data.features.augment import AugmentSettings
from unitaf_data.reader import sha256_of

FEATURE_BACKENDS = {"whisper": "offline", "units": "offline", "utterance": "offline",
                    "whisper_aug": "offline",
                    "unitalker": "unitalker", "semantic_codes": "indextts2",
                    "spk_cond": "indextts2", "emovec": "indextts2", "tts_latent": "indextts2",
                    "piper_latent": "piper"}
FRAME_RATE = 50.0  # Hz: every time-varying feature here is at 50 frames per second
SAMPLES_PER_FRAME = 320  # 16 kHz / 50 Hz


@dataclass(frozen=True)
class ExtractSettings:
    dataset_dir: Path
    device: str = "cpu"
    unitalker_ckpt: str | None = None  # UniTalker .pt or a Hugging Face model folder
    indextts2_dir: str | None = None  # IndexTTS2 checkpoints folder (config.yaml, gpt.pth...)
    w2v_bert: str | None = None  # w2v-BERT 2.0 folder or Hub id (default facebook/w2v-bert-2.0)
    semantic_codec: str | None = None  # MaskGCT codec .safetensors or Hub id (amphion/MaskGCT)
    augment: AugmentSettings = field(default_factory=AugmentSettings)  # whisper_aug copies


@dataclass
class ClipInput:
    key: str
    audio: Any  # float32 (N,) at 16 kHz
    text: str
    duration: float
    meta: Any = None  # the clip's json (`schema.ClipMeta`): its span and the source's custom
    face: Any = None  # float32 (T, C) at meta.fps (what augmentation moves with the audio)


def folder_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file in a model folder, by name."""
    return {path.name: sha256_of(path) for path in sorted(folder.iterdir()) if path.is_file()}


def frames_for(num_samples: int) -> int:
    """50 Hz frames covering a clip of `num_samples` at 16 kHz."""
    return round(num_samples / SAMPLES_PER_FRAME)


def group_by_backend(names: list[str]) -> dict[str, list[str]]:
    """Requested feature sets grouped by the backend that computes them (one pass each)."""
    unknown = [n for n in names if n not in FEATURE_BACKENDS]
    if unknown:
        raise ValueError(f"unknown feature set(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(FEATURE_BACKENDS)}")
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(FEATURE_BACKENDS[name], []).append(name)
    return groups


@dataclass(frozen=True)
class BackendPlan:
    """A backend's settings with its model locations resolved to local paths (once, in the
    driver, so actors never download), and the host memory one actor needs (None: small)."""

    settings: ExtractSettings
    memory_bytes: int | None = None


def plan_backend(backend: str, feature_sets: list[str], settings: ExtractSettings
                 ) -> BackendPlan:
    """Fail fast, before any model loads, on what a backend would lack (model files, the
    optional model code, fitted units), with an error that says what to do."""
    if backend == "offline" and "whisper_aug" in feature_sets and not settings.augment.copies:
        raise ValueError("the whisper_aug feature set needs --augment N (copies per clip)")
    if backend == "offline" and "units" in feature_sets:
        from unitaf_data.features.units import load_centroids

        load_centroids(settings.dataset_dir)
    elif backend == "unitalker":
        if not settings.unitalker_ckpt:
            raise ValueError("the unitalker feature set needs --unitalker-ckpt")
        if not Path(settings.unitalker_ckpt).exists():
            raise FileNotFoundError(f"{settings.unitalker_ckpt} not found")
    elif backend == "indextts2":
        from unitaf_data.features.indextts2 import plan_indextts2

        return plan_indextts2(feature_sets, settings)
    elif backend == "piper":
        from unitaf_data.piper import voice_files

        voice_files()
    return BackendPlan(settings)


def make_backend(backend: str, feature_sets: list[str], settings: ExtractSettings):
    if backend == "offline":
        from unitaf_data.features.offline import OfflineBackend

        return OfflineBackend(feature_sets, settings)
    if backend == "unitalker":
        from unitaf_data.features.unitalker import UniTalkerBackend

        plan_backend(backend, feature_sets, settings)
        return UniTalkerBackend(settings)
    if backend == "indextts2":
        from unitaf_data.features.indextts2 import IndexTTS2Backend

        return IndexTTS2Backend(feature_sets, settings)
    if backend == "piper":
        from unitaf_data.features.piper import PiperBackend

        return PiperBackend(feature_sets, settings)
    raise ValueError(f"unknown backend {backend!r}")
