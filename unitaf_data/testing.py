"""A small, valid dataset written through the real writers, for tests and benchmarks that
must not wait for a Ray build (Lhotse's `testing/dummies.py` habit).

`write_dummy_dataset(root)` writes main shards (noise audio, an ARKit-51 face that follows
the audio's loudness), the records, manifest and card, and the offline-style feature sets
`units` (codes) and `whisper` (teacher features) computed from the audio by a fixed rule, so
that a model can learn something from them. Nothing here is a stand-in for a real backend:
it is data in the dataset's format, produced deterministically from a seed.

Also the checks the tests make of built data and nothing in the product uses: lip closures
against bilabial phones (`lip_closed_frames`, `bilabial_closure_agreement`) and word errors
pooled over clips (`word_errors`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from unitaf_data import card
from unitaf_data.audio import flac_bytes
from unitaf_data.dataset import Dataset, DatasetLayout, ShardRef, write_json
from unitaf_data.extract import SetReport, feature_info
from unitaf_data.face import ARKIT51, lip_aperture
from unitaf_data.phones import is_bilabial, phone_frames
from unitaf_data.schema import SAMPLE_RATE, AsrInfo, ClipMeta, Phone, Word
from unitaf_data.shards import json_bytes, npy_bytes, write_tar
from unitaf_data.stages import manifest_row
from unitaf_data.text import normalize_text, word_error_rate

FPS = 30.0
UNITS = 16
TEACHER_DIM = 8


def write_dummy_dataset(root: str | Path, clips_per_split: dict[str, int] | None = None,
                        seconds: float = 2.0, seed: int = 0) -> Path:
    """A dataset folder with `clips_per_split` clips (default 4 train, 2 val, 2 test) of
    `seconds` each, and the `units` and `whisper` feature sets."""
    layout = DatasetLayout(root)
    rng = np.random.default_rng(seed)
    counts = clips_per_split or {"train": 4, "val": 2, "test": 2}
    rows, records, clips = [], {}, {}
    for split, count in counts.items():
        shard = ShardRef(split, 0)
        metas = [_clip(split, i, seconds, rng) for i in range(count)]
        samples = [_sample(meta, rng) for meta in metas]
        records[shard.id] = write_tar(layout.shard(shard), [s for s, _, _ in samples])
        rows += [manifest_row(meta, shard) for meta in metas]
        clips[shard] = [(meta, audio) for meta, (_, audio, _) in zip(metas, samples,
                                                                     strict=True)]
    card.write_table(layout.manifest, rows)
    card.write_table(layout.rejected, [], card.REJECTED_COLUMNS)
    info = card.dataset_info("demo", (ARKIT51.name, ARKIT51.channels, FPS), {"dummy": seed},
                             rows, [], len(rows), sum(r["duration"] for r in rows) / 3600,
                             records)
    card.write_info(layout, info)
    _write_feature_sets(layout, clips)
    card.write_card(Dataset.open_folder(layout.root))
    return layout.root


def _clip(split: str, index: int, seconds: float, rng: np.random.Generator) -> ClipMeta:
    frames = round(seconds * FPS)
    duration = frames / FPS
    start = float(index * 10)
    bilabial = 0.3 + 0.8 * rng.random()
    return ClipMeta(
        key=f"demo-spk{index % 2}-rec{split}{index:02d}-0000", text="a dummy clip",
        text_source="reference", words=(Word("a", 0.1, 0.2), Word("dummy", 0.25, 0.7),
                                        Word("clip", 0.8, 1.2)),
        language="en", speaker=f"spk{index % 2}", emotion=("neutral", "happy")[index % 2],
        split=split, source="demo", recording=f"rec{split}{index:02d}", start=start,
        end=start + duration, duration=duration, sample_rate=SAMPLE_RATE, fps=FPS,
        face_type=ARKIT51.name, num_frames=frames, rms_db=-20.0,
        asr=AsrInfo("dummy", "a dummy clip", -0.1, 0.01, 1.2), reference_text="a dummy clip",
        wer=0.0, phones=(Phone("d", 0.25, 0.3), Phone("m", bilabial, bilabial + 0.08)),
        phones_source="corpus")


def _sample(meta: ClipMeta, rng: np.random.Generator
            ) -> tuple[dict[str, bytes | str], np.ndarray, np.ndarray]:
    """(tar sample, audio, face): the face opens the jaw with the audio's loudness."""
    samples = round(meta.num_frames * SAMPLE_RATE / meta.fps)
    t = np.arange(samples) / SAMPLE_RATE
    loudness = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(1.5, 3.0) * t + rng.uniform(0, 6))
    audio = (0.2 * loudness * rng.standard_normal(samples)).astype(np.float32)
    frame_loudness = loudness[(np.arange(meta.num_frames) / meta.fps * SAMPLE_RATE).astype(int)]
    face = np.zeros((meta.num_frames, len(ARKIT51.channels)), np.float32)
    face[:, ARKIT51.index("JawOpen")] = 0.6 * frame_loudness
    face[:, ARKIT51.index("EyeBlinkLeft")] = 0.1
    sample = {"__key__": meta.key, "face.npy": npy_bytes(face),
              "flac": flac_bytes(audio, SAMPLE_RATE), "json": json_bytes(meta.to_dict())}
    return sample, audio, face


def _write_feature_sets(layout: DatasetLayout,
                        clips: dict[ShardRef, list[tuple[ClipMeta, np.ndarray]]]) -> None:
    declared = {
        "units": {"backend": "dummy", "model": {"name": "dummy loudness quantiser"},
                  "fields": {"units.npy": {"dtype": "int16", "shape": ["T"]}},
                  "frame_rate": 50.0, "dims": UNITS},
        "whisper": {"backend": "dummy", "model": {"name": "dummy loudness features"},
                    "fields": {"teacher.npy": {"dtype": "float16", "shape": ["T", TEACHER_DIM]}},
                    "frame_rate": 50.0, "dims": TEACHER_DIM},
    }
    for name, spec in declared.items():
        reports = {}
        for shard, members in clips.items():
            samples = [{"__key__": meta.key, **_features(name, audio)} for meta, audio in members]
            record = write_tar(layout.sidecar(name, shard), samples)
            reports[shard.id] = SetReport(record, len(members),
                                          sum(m.duration for m, _ in members))
        info = feature_info(name, spec, {"dummy": True}, reports)
        write_json(layout.feature_info(name), info.to_dict())


def _features(name: str, audio: np.ndarray) -> dict[str, bytes]:
    """50 Hz loudness of the audio: quantised into codes, or spread over teacher dims."""
    frames = len(audio) // 320
    level = np.sqrt(np.square(audio[: frames * 320].reshape(frames, 320)).mean(1))
    level = level / max(level.max(), 1e-6)
    if name == "units":
        return {"units.npy": npy_bytes(np.minimum(level * UNITS, UNITS - 1).astype(np.int16))}
    basis = np.cos(np.outer(level, np.arange(1, TEACHER_DIM + 1)))
    return {"teacher.npy": npy_bytes(basis.astype(np.float16))}


# --- checks the tests make of built data ----------------------------------------------

# Lips count as closed when the jaw's opening is cancelled by MouthClose to within this.
LIP_CLOSED_APERTURE = 0.06


def lip_closed_frames(face: np.ndarray, channels: Sequence[str],
                      threshold: float = LIP_CLOSED_APERTURE) -> np.ndarray:
    """Boolean (T,): the frames of an ARKit track whose lip aperture shows closed lips."""
    return lip_aperture(face, channels) < threshold


def bilabial_closure_agreement(closed: np.ndarray, phones: Iterable[tuple[str, float, float]],
                               fps: float, tolerance_frames: int = 1) -> tuple[float, float]:
    """How well lip closures match the bilabials of a (label, start, end) timeline in the
    track's time (seconds from its frame 0).

    Returns (recall, precision): the share of bilabials fully inside the track with a closed
    frame within ±tolerance of their frames, and the share of closed frames during speech
    (phones other than pauses `_`) within ±tolerance of a bilabial.
    """
    frames = len(closed)
    speech = np.zeros(frames, bool)
    near_bilabial = np.zeros(frames, bool)
    hits, total = 0, 0
    for label, start, end in phones:
        span = phone_frames(start, end, fps, frames)
        if label.startswith("_") or not len(span):
            continue
        speech[span] = True
        if is_bilabial(label):
            near = slice(max(span[0] - tolerance_frames, 0), span[-1] + 1 + tolerance_frames)
            near_bilabial[near] = True
            if start >= 0 and end * fps <= frames:
                total += 1
                hits += bool(closed[near].any())
    closed_in_speech = closed & speech
    recall = hits / total if total else 1.0
    precision = (closed_in_speech & near_bilabial).sum() / max(closed_in_speech.sum(), 1)
    return recall, float(precision)


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit operations, reference words): to pool WER over many clips."""
    ref = normalize_text(reference)
    return round(word_error_rate(reference, hypothesis) * len(ref.split())), len(ref.split())
