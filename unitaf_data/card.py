"""The dataset's self-description: `unitaf.json` (counted from the build's results), the Hub
dataset card, and the parquet tables.

The card's YAML declares every field's type so that `datasets.load_dataset` reads the
shards on a CPU-only machine without an audio decoding package (`flac` stays bytes) and
without guessing types from the first few samples.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from unitaf_data.conditions import CONDITION_FIELDS
from unitaf_data.dataset import Dataset, DatasetLayout, Location, split_order, write_json
from unitaf_data.licences import (
    dataset_terms,
    licence_metadata,
    licence_table,
    restriction_prose,
    source_terms,
)
from unitaf_data.records import tool_version
from unitaf_data.schema import SAMPLE_RATE, DatasetInfo, FeatureSetInfo, Rejection, ShardInfo
from unitaf_data.sources.demo_sentences import POOL_SIZE

_FEATURE_NOTE = (" Feature sets computed with third-party model weights are derived from them: "
                 "obtain the weights and respect their terms before using or sharing these "
                 "sets.")
REJECTED_COLUMNS = ("what", "where", "reason", "detail")


def dataset_features(channels: int, has_reference: bool, has_phones: bool,
                     has_conditions: bool = False) -> Any:
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
    if has_conditions:
        conditions = {name: Value("string" if kind is str else "float64")
                      for name, kind in CONDITION_FIELDS.items()}
        meta["custom"] = {"voice": Value("string"), "voice_name": Value("string"),
                          "conditions": conditions,
                          "piper": {"sentences": List(Value("string")),  # Piper clips only
                                    "pauses": List(Value("float64")), "seed": Value("int64"),
                                    "voice_sha256": Value("string")}}
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


def write_table(path: Path | Location, rows: list[dict[str, Any]],
                columns: tuple[str, ...] = ()) -> None:
    """Rows as a parquet table (an empty table keeps `columns` when there are no rows),
    written whole to a local file or the dataset's storage."""
    table = (pa.Table.from_pylist(rows) if rows
             else pa.table({c: pa.array([], pa.string()) for c in columns}))
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer)
    Location.of(path).write_bytes(buffer.getvalue().to_pybytes())


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
        "has_conditions": any(r.get("conditions") is not None for r in rows),
    }
    if counts["has_conditions"]:
        counts["clips_per_condition"] = {
            s: dict(sorted(Counter("clean" if r["conditions"] == "clean" else "conditioned"
                                   for r in rows if r["split"] == s).items()))
            for s in splits}
        counts["speakers_per_split"] = {s: sorted({r["speaker"] for r in rows
                                                   if r["split"] == s}) for s in splits}
    face_type, channels, fps = face
    return DatasetInfo(source=source, face_type=face_type, channels=channels, fps=fps,
                       sample_rate=SAMPLE_RATE, build_settings=build_settings, counts=counts,
                       shards=dict(sorted(shards.items())), tool_version=tool_version())


def write_info(layout: DatasetLayout, info: DatasetInfo) -> None:
    write_json(layout.store / layout.INFO_KEY, info.to_dict())


def card_text(dataset: Dataset, feature_sets: list[str] | None = None,
              repo_id: str | None = None) -> str:
    """README.md of `dataset` with `feature_sets` (None: every complete set): YAML front
    matter (licences, one config per feature set with its splits, declared features) and
    prose for people; `repo_id` fills in the loading examples."""
    import yaml

    info = dataset.info
    repo = repo_id or "OWNER/NAME"
    splits = dataset.splits
    sidecars = {name: dataset.feature_set(name) for name in
                (dataset.feature_set_names() if feature_sets is None else feature_sets)}
    source = source_terms(info.source)
    terms = dataset_terms(dataset, list(sidecars))
    main = dataset_features(len(info.channels), info.counts.get("has_reference_text", False),
                            info.counts.get("has_phones", False),
                            info.counts.get("has_conditions", False))
    configs = [("default", "data", main)] + [
        (name, f"features/{name}", sidecar_features(spec)) for name, spec in sidecars.items()]
    front = {
        **licence_metadata(terms),
        "pretty_name": f"UniTAF {info.source} dataset",
        "task_categories": ["text-to-speech", "text-to-audio"],
        "tags": ["audio-to-face", "talking-face", "blendshapes", "webdataset", "unitaf"],
        "configs": [{"config_name": name, **({"default": True} if name == "default" else {}),
                     "data_files": [{"split": split, "path": f"{folder}/{split}/*.tar"}
                                    for split in splits]}
                    for name, folder, _ in configs],
        "dataset_info": [{"config_name": name, "features": features._to_yaml_list()}
                         for name, _, features in configs],
    }
    counts = info.counts
    split_lines = "\n".join(f"| {s} | {counts['clips_per_split'][s]} | "
                            f"{counts['hours_per_split'][s]:.3f} |" for s in splits)
    first = next(iter(sidecars), None)
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
{_demo_prose(info.source, counts)}
{_sidecar_prose(sidecars)}Alignment: face frame i covers `[start + i/fps, start + (i+1)/fps)` of
the source recording; the audio holds `round(T * 16000 / fps)` samples from `start`.

## Load

With `datasets` (no audio package needed: `flac` stays bytes):

```python
from datasets import load_dataset
clips = load_dataset("{repo}", split="train")  # soundfile.read(io.BytesIO(clip["flac"]))
{f'features = load_dataset("{repo}", "{first}", split="train")  # same keys, same order'
 if first else ""}
```

With `webdataset`, from downloaded shards: pass a list of local paths (a string is parsed
as a URL list, with `pipe:` commands) and do not call `.decode()` (its default decoders
unpickle), or set `WDS_SECURE=1`:

```python
import webdataset as wds
from huggingface_hub import hf_hub_download
shard = hf_hub_download("{repo}", "data/train/train-000000.tar", repo_type="dataset")
for sample in wds.WebDataset([shard], shardshuffle=False):
    key, face_npy, flac, meta = (sample[k] for k in ("__key__", "face.npy", "flac", "json"))
```

With the toolkit, which checks every shard's sha256 and fetches shards as it needs them:

```bash
unitaf train --data {repo} --out runs/stage1 --config configs/demo_stage1.yaml
unitaf-data pull {repo} --out dataset   # or a local copy (`--features` picks the sets)
```

## Licence

{source.note}{_FEATURE_NOTE if len(terms) > 1 else ''}
{restriction_prose(terms, "this dataset")}
{licence_table(terms)}
"""
    return f"---\n{yaml.safe_dump(front, sort_keys=False)}---\n{body}"


def write_card(dataset: Dataset) -> None:
    """README.md for the dataset with every complete feature set."""
    dataset.store.write_text(dataset.layout.CARD_KEY, card_text(dataset))


def _phones_prose(counts: dict[str, Any]) -> str:
    if not counts.get("has_phones"):
        return ""
    return ("\nPhone times (`phones`, seconds from the clip start) are `corpus` "
            "(`phones_source`) where the corpus timed them (the demo synthesiser's eSpeak NG "
            "phonemes, or a TextGrid phone tier) and `estimated` where they were spread over the "
            "word times with the CMU Pronouncing Dictionary (ARPAbet).")


def _demo_prose(source: str, counts: dict[str, Any]) -> str:
    """How the demo corpus holds content out, and its recording conditions."""
    if source != "demo":
        return ""
    speakers = counts.get("speakers_per_split", {})
    conditioned = counts.get("clips_per_condition", {}).get("train", {}).get("conditioned", 0)
    return f"""
Splits are held out **by sentence**: the corpus draws its sentences from a fixed pool of
{POOL_SIZE} (generated from a grammar over a word list rich in /p b m/), each sentence
belongs to exactly one split, and no sentence of `val`, `test` or `test_speaker` is spoken
in `train` by any voice. `val` and `test` are unseen sentences spoken by the seen speakers
({", ".join(speakers.get("test", [])) or "none"}); `test_speaker` is unseen sentences spoken
by a speaker heard nowhere else ({", ".join(speakers.get("test_speaker", [])) or "none"}).
Every split cycles through the speakers and emotions it has.

Recording conditions (in each clip's `json` `custom.conditions`, and as the `conditions`
column of `manifest.parquet`): {conditioned} train clips come from recordings put through
seeded conditions: room (pink), fan (brown noise with a hum) or babble (other eSpeak voices)
noise at 5-30 dB SNR, long noise-only stretches before the first and after the last word
(`lead_s`, `tail_s`, face at rest; clips keep what the cutter leaves of them), a level of
-35 to -10 dBFS, a telephone channel (300-3400 Hz, 8 kHz) and light reverb (synthetic room,
RT60 0.15-0.45 s). The held-out splits are clean: `unitaf eval` adds conditions itself.
`custom.voice` names the synthesiser that spoke the clip: `espeak` (eSpeak NG voices), or
`piper` (speaker spk06, Piper's `en_US-joe-medium` voice, in train, val and test; its clips
carry `custom.piper`, the script that speaks the recording again for `piper_latent`).
"""


def _sidecar_prose(sidecars: dict[str, FeatureSetInfo]) -> str:
    if not sidecars:
        return ""
    lines = "\n".join(f"| `{name}` | {spec.backend} | "
                       f"{', '.join(f'`{f}`' for f in spec.fields)} | {spec.frame_rate} |"
                       for name, spec in sidecars.items())
    return ("Feature sets (sidecar shards under `features/{name}/`, same keys in the same order "
            "as the main shards; load one with `load_dataset(path, name)`):\n\n"
            "| set | backend | fields | Hz |\n|---|---|---|---|\n" + lines + "\n\n")


def refresh_card(root: Path) -> None:
    """Rewrite README.md from unitaf.json and the complete feature sets now present."""
    write_card(Dataset.open_folder(root))
