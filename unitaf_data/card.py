"""The dataset's self-description: `unitaf.json`, the Hub dataset card, and the parquet tables.

The card's YAML declares every field's type so that `datasets.load_dataset` reads the
shards on a CPU-only machine without an audio decoding package (`flac` stays bytes) and
without guessing types from the first few samples.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from unitaf_data.schema import SCHEMA_VERSION

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


def dataset_features(channels: int, has_reference: bool) -> Any:
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
    return Features({
        "__key__": Value("string"), "__url__": Value("string"), "flac": Value("binary"),
        "face.npy": Array2D(shape=(None, channels), dtype="float32"), "json": meta,
    })


def sidecar_features(feature_info: dict[str, Any]) -> Any:
    """The `datasets.Features` of one sidecar feature set, from its feature.json."""
    from datasets import Array2D, Features, List, Value

    declared: dict[str, Any] = {"__key__": Value("string"), "__url__": Value("string"),
                                "rejected.txt": Value("string")}
    for name, spec in feature_info["fields"].items():
        shape = spec["shape"]
        if len(shape) == 2:
            declared[name] = Array2D(shape=(None, shape[1]), dtype=spec["dtype"])
        else:
            declared[name] = List(Value(spec["dtype"]))
    return Features(declared)


def feature_sets(out_dir: Path) -> dict[str, dict[str, Any]]:
    """feature.json of every extracted feature set, by name."""
    return {path.parent.name: json.loads(path.read_text())
            for path in sorted((out_dir / "features").glob("*/feature.json"))}


def write_table(path: Path, rows: list[dict[str, Any]], columns: tuple[str, ...] = ()) -> None:
    """Rows as a parquet table (an empty table keeps `columns` when there are no rows)."""
    table = (pa.Table.from_pylist(rows) if rows
             else pa.table({c: pa.array([], pa.string()) for c in columns}))
    pq.write_table(table, path)


def write_info(out_dir: Path, info: dict[str, Any]) -> None:
    (out_dir / "unitaf.json").write_text(json.dumps(
        {"schema_version": SCHEMA_VERSION, "tool_version": tool_version(), **info},
        indent=2, sort_keys=True))


def write_card(out_dir: Path, info: dict[str, Any], has_reference: bool) -> None:
    """README.md: YAML front matter (license, splits, features) and prose for people."""
    import yaml

    license_id, license_note = SOURCE_LICENSES.get(info["source"], ("other", ""))
    splits = sorted(info["counts"]["clips_per_split"])
    sidecars = feature_sets(out_dir)
    configs = [("default", "data", dataset_features(len(info["channels"]), has_reference))] + [
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
    counts = info["counts"]
    split_lines = "\n".join(f"| {s} | {counts['clips_per_split'][s]} | "
                            f"{counts['hours_per_split'][s]:.3f} |" for s in splits)
    body = f"""# UniTAF {info['source']} dataset

Text–audio–face triplets cut from the `{info['source']}` corpus by `unitaf-data build`
(unitaf {tool_version()}): each sample is a clip of 16 kHz mono speech (`flac`), its face
track (`face.npy`, float32 `(T, {len(info['channels'])})` `{info['face_type']}` at
{info['fps']} fps) and its metadata (`json`: transcript with word times, speaker, emotion,
ASR statistics). Channel names and build settings are in `unitaf.json`; one row per clip is
in `manifest.parquet`, one row per dropped recording or clip in `rejected.parquet`.

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
    (out_dir / "README.md").write_text(f"---\n{yaml.safe_dump(front, sort_keys=False)}---\n{body}")


def _sidecar_prose(sidecars: dict[str, dict[str, Any]]) -> str:
    if not sidecars:
        return ""
    lines = "\n".join(f"| `{name}` | {spec['backend']} | "
                       f"{', '.join(f'`{f}`' for f in spec['fields'])} | {spec['frame_rate']} |"
                       for name, spec in sidecars.items())
    return ("Feature sets (sidecar shards under `features/{name}/`, same keys in the same order "
            "as the main shards; load one with `load_dataset(path, name)`):\n\n"
            "| set | backend | fields | Hz |\n|---|---|---|---|\n" + lines + "\n\n")


def _feature_licences(sidecars: dict[str, dict[str, Any]]) -> str:
    """Terms of the model weights the feature sets were computed with, where declared."""
    lines = [f"- `{name}`: " + "; ".join(f"{model} ({terms})"
                                          for model, terms in spec["licences"].items())
             for name, spec in sidecars.items() if spec.get("licences")]
    if not lines:
        return ""
    return ("\n\nFeature sets computed with third-party model weights are derived from them; "
            "obtain the weights and respect their terms before using or sharing these sets:\n\n"
            + "\n".join(lines))


def refresh_card(out_dir: Path) -> None:
    """Rewrite README.md from unitaf.json and the feature sets now present."""
    info = json.loads((out_dir / "unitaf.json").read_text())
    write_card(out_dir, info, info["counts"].get("has_reference_text", False))
