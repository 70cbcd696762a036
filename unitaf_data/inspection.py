"""Reading a built dataset back for people: a summary and a plot of one clip."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unitaf_data.dataset import Dataset
from unitaf_data.face import channel_index
from unitaf_data.hub import open_dataset
from unitaf_data.schema import DatasetInfo


@dataclass
class DatasetSummary:
    dataset: Dataset
    manifest: list[dict[str, Any]]
    rejected: list[dict[str, Any]]

    @property
    def info(self) -> DatasetInfo:
        return self.dataset.info

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


def load_summary(reference: str | Path) -> DatasetSummary:
    dataset = open_dataset(reference)
    return DatasetSummary(dataset, dataset.manifest(), dataset.rejected())


def load_clip(dataset: Dataset, key: str | None = None) -> dict[str, Any]:
    """One decoded clip (audio array, face array, metadata) by key; the first by default."""
    if key is None:
        first = next(iter(dataset.samples(dataset.shards()[:1])), None)
        if first is None:
            raise ValueError(f"{dataset.root} has no clips")
        key = first.key
    sample = dataset.sample(key)
    return {"audio": sample.audio(), "sample_rate": sample.meta.sample_rate,
            "face": sample.face, "meta": sample.meta, "channels": dataset.info.channels}


def plot_channels(channels: list[str]) -> list[str]:
    """The channels that show mouth opening: ARKit JawOpen/MouthClose, FLAME's jaw
    rotation, or else the first two channels."""
    for wanted in (["JawOpen", "MouthClose"], ["jaw_x"]):
        if all(name in channels for name in wanted):
            return wanted
    return list(channels[:2])


def plot_clip(clip: dict[str, Any], out_path: str | Path) -> Path:
    """Waveform, mouth channels (JawOpen and MouthClose for ARKit) and word boundaries of one
    clip on one time axis. The title wraps to the figure's width and word labels alternate
    between rows, so long texts and quick words stay readable."""
    import textwrap

    from matplotlib.figure import Figure

    meta, face, channels = clip["meta"], clip["face"], clip["channels"]
    audio_time = np.arange(len(clip["audio"])) / clip["sample_rate"]
    frame_time = (np.arange(len(face)) + 0.5) / meta.fps
    fig = Figure(figsize=(12, 5.5))
    wave_ax, face_ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 1.3]})
    wave_ax.plot(audio_time, clip["audio"], linewidth=0.4, color="0.3")
    wave_ax.set_ylabel("waveform")
    fig.suptitle("\n".join(textwrap.wrap(f"{meta.key}: “{meta.text}”", 130)), fontsize=9,
                 x=0.01, ha="left")
    for name, colour in zip(plot_channels(channels), ("tab:red", "tab:blue"), strict=False):
        face_ax.plot(frame_time, face[:, channel_index(channels, name)], label=name,
                     color=colour)
    face_ax.set_ylabel("face channel value")
    face_ax.set_xlabel(f"seconds from clip start (recording {meta.recording} "
                       f"at {meta.start:.3f} s)")
    face_ax.legend(loc="upper right")
    for i, word in enumerate(meta.words):
        for ax in (wave_ax, face_ax):
            ax.axvspan(word.start, word.end, color="tab:green", alpha=0.08)
            ax.axvline(word.start, color="tab:green", linewidth=0.5)
        face_ax.text(word.start, 1.02 + 0.07 * (i % 3), word.word, fontsize=7,
                     transform=face_ax.get_xaxis_transform())
    fig.tight_layout()
    out_path = Path(out_path)
    fig.savefig(out_path, dpi=120)
    return out_path
