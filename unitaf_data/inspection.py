"""Reading a built dataset back for people: a summary and a plot of one clip."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from unitaf_data.audio import decode_flac
from unitaf_data.face import channel_index
from unitaf_data.shards import read_tar


@dataclass
class DatasetSummary:
    path: Path
    info: dict[str, Any]
    manifest: list[dict[str, Any]]
    rejected: list[dict[str, Any]]

    @property
    def hours(self) -> float:
        return sum(row["duration"] for row in self.manifest) / 3600

    def speakers(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.manifest:
            counts[row["speaker"]] = counts.get(row["speaker"], 0) + 1
        return dict(sorted(counts.items()))

    def splits(self) -> dict[str, tuple[int, float]]:
        """Clips and hours per split."""
        result: dict[str, tuple[int, float]] = {}
        for row in self.manifest:
            clips, hours = result.get(row["split"], (0, 0.0))
            result[row["split"]] = (clips + 1, hours + row["duration"] / 3600)
        return result

    def samples(self, count: int = 3) -> list[dict[str, Any]]:
        """`count` clips spread evenly over the manifest."""
        if not self.manifest:
            return []
        picks = np.linspace(0, len(self.manifest) - 1, min(count, len(self.manifest)))
        return [self.manifest[int(i)] for i in picks]


def load_summary(dataset_dir: str | Path) -> DatasetSummary:
    path = Path(dataset_dir)
    info_path = path / "unitaf.json"
    if not info_path.exists():
        raise FileNotFoundError(f"{path} is not a unitaf dataset (no unitaf.json)")
    return DatasetSummary(
        path=path, info=json.loads(info_path.read_text()),
        manifest=pq.read_table(path / "manifest.parquet").to_pylist(),
        rejected=pq.read_table(path / "rejected.parquet").to_pylist(),
    )


def load_clip(dataset_dir: str | Path, key: str | None = None) -> dict[str, Any]:
    """One decoded sample (audio array, face array, json) by key; the first clip by default."""
    summary = load_summary(dataset_dir)
    if not summary.manifest:
        raise ValueError(f"{dataset_dir} has no clips")
    row = next((r for r in summary.manifest if r["key"] == key), None) if key else \
        summary.manifest[0]
    if row is None:
        raise KeyError(f"no clip {key!r} in {dataset_dir}")
    shard = Path(dataset_dir) / "data" / row["split"] / f"{row['shard']}.tar"
    sample = next(s for s in read_tar(shard) if s["__key__"] == row["key"])
    audio, sample_rate = decode_flac(sample["flac"])
    return {"audio": audio, "sample_rate": sample_rate, "face": sample["face.npy"],
            "meta": sample["json"], "channels": summary.info["channels"]}


def mouth_channels(channels: list[str]) -> list[str]:
    """The channels that show mouth opening: ARKit JawOpen/MouthClose, FLAME's jaw
    rotation, or else the first two channels."""
    for wanted in (["JawOpen", "MouthClose"], ["jaw_x"]):
        if all(name in channels for name in wanted):
            return wanted
    return list(channels[:2])


def plot_clip(clip: dict[str, Any], out_path: str | Path) -> Path:
    """Waveform, mouth channels (JawOpen and MouthClose for ARKit) and word boundaries of one
    clip on one time axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta, face, channels = clip["meta"], clip["face"], clip["channels"]
    audio_time = np.arange(len(clip["audio"])) / clip["sample_rate"]
    frame_time = (np.arange(len(face)) + 0.5) / meta["fps"]
    fig, (wave_ax, face_ax) = plt.subplots(2, 1, figsize=(12, 5), sharex=True,
                                           gridspec_kw={"height_ratios": [1, 1.3]})
    wave_ax.plot(audio_time, clip["audio"], linewidth=0.4, color="0.3")
    wave_ax.set_ylabel("waveform")
    wave_ax.set_title(f"{meta['key']}: “{meta['text']}”", fontsize=9, loc="left")
    for name, colour in zip(mouth_channels(channels), ("tab:red", "tab:blue"), strict=False):
        face_ax.plot(frame_time, face[:, channel_index(channels, name)], label=name,
                     color=colour)
    face_ax.set_ylabel("face channel value")
    face_ax.set_xlabel(f"seconds from clip start (recording {meta['recording']} "
                       f"at {meta['start']:.3f} s)")
    face_ax.legend(loc="upper right")
    for word in meta["words"]:
        for ax in (wave_ax, face_ax):
            ax.axvspan(word["start"], word["end"], color="tab:green", alpha=0.08)
            ax.axvline(word["start"], color="tab:green", linewidth=0.5)
        face_ax.text(word["start"], 1.02, word["word"], fontsize=7, rotation=45,
                     transform=face_ax.get_xaxis_transform())
    fig.tight_layout()
    out_path = Path(out_path)
    fig.savefig(out_path, dpi=120)
    plt.close(fig)
    return out_path
