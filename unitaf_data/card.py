"""The dataset's self-description: `unitaf.json` (counted from the build's results), the Hub
dataset card, and the parquet tables.

The card's YAML declares every field's type so that `datasets.load_dataset` reads the
shards on a CPU-only machine without an audio decoding package (`flac` stays bytes) and
without guessing types from the first few samples.
"""

from __future__ import annotations

from collections import Counter
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from unitaf_data.dataset import Dataset, DatasetLayout, split_order, write_json
from unitaf_data.schema import SAMPLE_RATE, DatasetInfo, FeatureSetInfo, Rejection, ShardInfo

SOURCE_LICENSES = {  # what a user of a dataset built from each source must respect
    "demo": ("apache-2.0", "Generated locally from eSpeak NG speech (the generated audio is "
                           "not covered by eSpeak NG's GPL-3.0) and a procedural face."),
    "beat2": ("cc-by-nc-4.0", "Derived from BEAT2 (CC BY-NC 4.0): non-commercial use only; "
                              "cite EMAGE (Liu et al., CVPR 2024). FLAME parameters are "
                              "subject to the FLAME (MPI) licence."),
    "folder": ("other", "Derived from a user-supplied corpus: its licence applies."),
    "unitalker": ("other", "Derived from corpora in UniTalker's layout: each corpus keeps "
                           "its own licence."),
}
REJECTED_COLUMNS = ("what", "where", "reason", "detail")


def tool_version() -> str:
    try:
        return version("unitaf")
    except PackageNotFoundError:
        return "0+unknown"


def dataset_features(channels: int, has_reference: bool, has_phones: bool) -> Any:
    """The `datasets.Features` of a main shard sample."""
    from datasets import Array2D, Features, List, Value

    word = {"word": Value("string"), "start": Value("float64"), "end": Value("float64"),
            "prob": Value("float64")}
    meta: dict[str, Any] = {
        "key": Value("string"), "text": Value("string"), "text_source": Value("string"),
        "words": List(word),
        "language": Value("string"), "speaker": Value("string"), "emotion": Value("string"),
        "split": Value("string"), "source": Value("string"), "recording": Value("string"),
        "start": Value("float64"), "end": Value("float64"), "duration": Value("float64"),
        "sample_rate": Value("int64"), "fps": Value("float64"), "face_type": Value("string"),
        "num_frames": Value("int64"), "rms_db": Value("float64"),
        "asr": {"model": Value("string"), "text": Value("string"),
                "avg_logprob": Value("float64"),
                "no_speech_prob": Value("float64"), "compression_ratio": Value("float64")},
    }
    if has_reference:
        meta |= {"reference_text": Value("string"), "wer": Value("float64")}
    if has_phones:
        meta |= {"phones": List({"phone": Value("string"), "start": Value("float64"),
                                 "end": Value("float64")}),
                 "phones_source": Value("string")}
    return Features({
        "__key__": Value("string"), "__url__": Value("string"), "flac": Value("binary"),
        "face.npy": Array2D(shape=(None, channels), dtype="float32"), "json": meta,
    })


def sidecar_features(feature_info: FeatureSetInfo) -> Any:
    """The `datasets.Features` of one sidecar feature set, from its feature.json."""
    from datasets import Array2D, Features, List, Value

    declared: dict[str, Any] = {"__key__": Value("string"), "__url__": Value("string"),
                                "rejected.txt": Value("string")}
    for name, spec in feature_info.fields.items():
        if len(spec.shape) == 2:
            first = None if spec.time_varying else spec.shape[0]
            declared[name] = Array2D(shape=(first, spec.shape[1]), dtype=spec.dtype)
        else:
            declared[name] = List(Value(spec.dtype))
    return Features(declared)


def write_table(path: Path, rows: list[dict[str, Any]], columns: tuple[str, ...] = ()) -> None:
    """Rows as a parquet table (an empty table keeps `columns` when there are no rows)."""
    table = (pa.Table.from_pylist(rows) if rows
             else pa.table({c: pa.array([], pa.string()) for c in columns}))
    pq.write_table(table, path)


def dataset_info(source: str, face: tuple[str, tuple[str, ...], float],
                 build_settings: dict[str, Any], rows: list[dict[str, Any]],
                 rejections: list[Rejection], recordings: int, input_hours: float,
                 shards: dict[str, ShardInfo]) -> DatasetInfo:
    """`unitaf.json` of a finished build: the face type (name, channels, fps), settings,
    counts from the manifest rows and rejections, and every shard's record."""
    splits = sorted({r["split"] for r in rows}, key=split_order)
    counts = {
        "recordings": recordings,
        "recordings_rejected": sum(r.what == "recording" for r in rejections),
        "clips": len(rows), "clips_rejected": sum(r.what == "clip" for r in rejections),
        "hours": round(sum(r["duration"] for r in rows) / 3600, 6),
        "input_hours": round(input_hours, 6),
        "speakers": len({r["speaker"] for r in rows}),
        "clips_per_split": {s: sum(r["split"] == s for r in rows) for s in splits},
        "hours_per_split": {s: round(sum(r["duration"] for r in rows if r["split"] == s) / 3600,
                                     6) for s in splits},
        "shards": len(shards),
        "rejected_by_reason": dict(sorted(Counter(r.reason for r in rejections).items())),
        "has_reference_text": any(r.get("reference_text") is not None for r in rows),
        "has_phones": any(r.get("phones_source") is not None for r in rows),
    }
    face_type, channels, fps = face
    return DatasetInfo(source=source, face_type=face_type, channels=channels, fps=fps,
                       sample_rate=SAMPLE_RATE, build_settings=build_settings, counts=counts,
                       shards=dict(sorted(shards.items())), tool_version=tool_version())


def write_info(layout: DatasetLayout, info: DatasetInfo) -> None:
    write_json(layout.info, info.to_dict())


def write_card(dataset: Dataset) -> None:
    """README.md: YAML front matter (license, splits, features) and prose for people."""
    import yaml

    info = dataset.info
    license_id, license_note = SOURCE_LICENSES.get(info.source, ("other", ""))
    splits = dataset.splits
    sidecars = dataset.feature_sets()
    main = dataset_features(len(info.channels), info.counts.get("has_reference_text", False),
                            info.counts.get("has_phones", False))
    configs = [("default", "data", main)] + [
        (name, f"features/{name}", sidecar_features(spec)) for name, spec in sidecars.items()]
    front = {
        "license": license_id,
        "task_categories": ["text-to-speech", "text-to-audio"],
        "tags": ["audio-to-face", "talking-face", "blendshapes", "webdataset", "unitaf"],
        "configs": [{"config_name": name, "data_files": [
            {"split": split, "path": f"{folder}/{split}/*.tar"} for split in splits]}
            for name, folder, _ in configs],
        "dataset_info": [{"config_name": name, "features": features._to_yaml_list()}
                         for name, _, features in configs],
    }
    counts = info.counts
    split_lines = "\n".join(f"| {s} | {counts['clips_per_split'][s]} | "
                            f"{counts['hours_per_split'][s]:.3f} |" for s in splits)
    body = f"""# UniTAF {info.source} dataset

Text–audio–face triplets cut from the `{info.source}` corpus by `unitaf-data build`
(unitaf {info.tool_version}): each sample is a clip of 16 kHz mono speech (`flac`), its face
track (`face.npy`, float32 `(T, {len(info.channels)})` `{info.face_type}` at
{info.fps} fps) and its metadata (`json`: transcript with word times, speaker, emotion,
ASR statistics{", phone times" if counts.get("has_phones") else ""}). Channel names, build
settings and every shard's sample count and sha256 are in `unitaf.json`; one row per clip is
in `manifest.parquet`, one row per dropped recording or clip in
`rejected.parquet`.{_phones_prose(counts)}

| split | clips | hours |
|---|---|---|
{split_lines}

{_sidecar_prose(sidecars)}Alignment: face frame i covers `[start + i/fps, start + (i+1)/fps)` of
the source recording; the audio holds `round(T * 16000 / fps)` samples from `start`.

## Load

```python
from datasets import load_dataset
ds = load_dataset("path/or/hub-id", split="train")  # flac as bytes: soundfile.read(io.BytesIO(b))
```

## Licence

{license_id}. {license_note}{_feature_licences(sidecars)}
"""
    dataset.layout.card.write_text(
        f"---\n{yaml.safe_dump(front, sort_keys=False)}---\n{body}")


def _phones_prose(counts: dict[str, Any]) -> str:
    if not counts.get("has_phones"):
        return ""
    return ("\nPhone times (`phones`, seconds from the clip start) are `corpus` "
            "(`phones_source`) where the corpus timed them (the demo synthesiser's eSpeak NG "
            "phonemes, or a TextGrid phone tier) and `estimated` where they were spread over the "
            "word times with the CMU Pronouncing Dictionary (ARPAbet).")


def _sidecar_prose(sidecars: dict[str, FeatureSetInfo]) -> str:
    if not sidecars:
        return ""
    lines = "\n".join(f"| `{name}` | {spec.backend} | "
                       f"{', '.join(f'`{f}`' for f in spec.fields)} | {spec.frame_rate} |"
                       for name, spec in sidecars.items())
    return ("Feature sets (sidecar shards under `features/{name}/`, same keys in the same order "
            "as the main shards; load one with `load_dataset(path, name)`):\n\n"
            "| set | backend | fields | Hz |\n|---|---|---|---|\n" + lines + "\n\n")


def _feature_licences(sidecars: dict[str, FeatureSetInfo]) -> str:
    """Terms of the model weights the feature sets were computed with, where declared."""
    lines = [f"- `{name}`: " + "; ".join(f"{model} ({terms})"
                                          for model, terms in spec.licences.items())
             for name, spec in sidecars.items() if spec.licences]
    if not lines:
        return ""
    return ("\n\nFeature sets computed with third-party model weights are derived from them; "
            "obtain the weights and respect their terms before using or sharing these sets:\n\n"
            + "\n".join(lines))


def refresh_card(root: Path) -> None:
    """Rewrite README.md from unitaf.json and the complete feature sets now present."""
    write_card(Dataset.open_folder(root))
