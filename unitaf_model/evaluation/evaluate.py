"""Evaluating runs on a split: predictions, the field's metrics, and the report.

`evaluate(runs, dataset, split)` predicts every clip of the split with each run (its input
read from the dataset's sidecars of the run's backbone set, exactly as in training), adds
the train-mean face of the first run and ground truth as reference systems, and scores them
all with the same functions (`unitaf_model.evaluation.metrics`) at the dataset's face frame
rate: model outputs (at each run's own rate) are resampled onto each clip's own frames.
`write_report` writes `eval.json` (every metric with its variant, units and pooling), `eval.md`
(one table) and plots. Runs are loaded read-only (`unitaf_model.run.load_run`); nothing of
the training set-up runs here. In-training validation calls `score` on the val split too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unitaf_data.dataset import Dataset
from unitaf_data.face import channel_index, mouth_channels, resample_face
from unitaf_data.reader import Skips
from unitaf_data.schema import SAMPLE_RATE
from unitaf_model.evaluation import metrics
from unitaf_model.run import LoadedRun

MEAN_FACE = "train-mean face"
GROUND_TRUTH = "ground truth"
NOTES = (
    "Ground truth scores 70% on the frame form of BCS by construction: the closure threshold "
    "is the value that bounds 70% of its own bilabial frames.",
    "Metrics are computed at the dataset's face frame rate; model outputs are resampled onto "
    "each clip's frames.",
    "av_offset is a diagnostic (audio RMS envelope against mouth openness), not a literature "
    "metric.",
)


@dataclass
class Truth:
    """One clip's ground truth: face at the dataset fps, audio, bilabial intervals."""

    key: str
    speaker: str
    face: np.ndarray
    audio: np.ndarray
    bilabials: list[tuple[float, float]]
    has_phones: bool
    words: list[tuple[str, float, float]] = field(default_factory=list)


@dataclass
class Evaluation:
    """Faces per system (one per clip, on the truth's frames) and their scores."""

    dataset: Dataset
    split: str
    truths: list[Truth]
    faces: dict[str, list[np.ndarray]]
    runs: dict[str, LoadedRun]
    scores: dict[str, dict[str, metrics.MetricResult]] = field(default_factory=dict)
    skipped: Skips = field(default_factory=Skips)


def evaluate(runs: Sequence[LoadedRun], dataset: Dataset, split: str = "test",
             skip_bad: bool = False) -> Evaluation:
    """Every run, the first run's train-mean face and ground truth, scored on `split`."""
    if split not in dataset.splits:
        raise ValueError(f"{dataset.root} has no {split} split (it has "
                         f"{', '.join(dataset.splits)})")
    names = _system_names(runs)
    sidecars = _sidecars(runs, dataset)
    skips = Skips() if skip_bad else None
    truths, faces = [], {name: [] for name in [*names, MEAN_FACE]}
    for sample in dataset.samples(dataset.shards(split), sidecars, skips):
        if sample.refused:
            continue
        truth = Truth(sample.key, sample.meta.speaker, sample.face, sample.audio(),
                      metrics.bilabial_intervals((p.phone, p.start, p.end)
                                                 for p in sample.meta.phones or ()),
                      sample.meta.phones is not None,
                      [(w.word, w.start, w.end) for w in sample.meta.words])
        truths.append(truth)
        for name, run in zip(names, runs, strict=True):
            faces[name].append(resample_face(run.predict_features(sample.features,
                                                                  truth.speaker),
                                             run.info.fps, sample.meta.fps, len(truth.face)))
        template = runs[0].model.template.numpy()
        faces[MEAN_FACE].append(np.repeat(template[None], len(truth.face), 0))
    if not truths:
        raise ValueError(f"no clip of the {split} split could be evaluated")
    faces[GROUND_TRUTH] = [t.face for t in truths]
    result = Evaluation(dataset, split, truths, faces, dict(zip(names, runs, strict=True)),
                        skipped=skips or Skips())
    rig, interval = runs[0].rig, runs[0].interval()
    for name, system in faces.items():
        result.scores[name] = score(truths, system, dataset.info.channels, dataset.info.fps,
                                    rig, interval)
    _add_ratios(result.scores)
    return result


def _system_names(runs: Sequence[LoadedRun]) -> list[str]:
    names = []
    for run in runs:
        name = run.path.name
        while name in names:
            name = f"{run.path.parent.name}/{name}"
        names.append(name)
    return names


def _sidecars(runs: Sequence[LoadedRun], dataset: Dataset) -> dict[str, list[str]]:
    wanted: dict[str, list[str]] = {}
    for run in runs:
        if run.info.model.channels != dataset.info.channels:
            raise ValueError(f"{run.path} predicts other face channels than {dataset.root} "
                             "holds")
        for name, fields in run.sidecars.items():
            for field_name in fields:
                dataset.feature_set(name).field_spec(field_name)  # a clear error when missing
                wanted.setdefault(name, [])
                if field_name not in wanted[name]:
                    wanted[name].append(field_name)
    return wanted


def score(truths: Sequence[Truth], faces: Sequence[np.ndarray], channels: Sequence[str],
          fps: float, rig=None, interval=None) -> dict[str, metrics.MetricResult]:
    """Every metric of one system's faces against the truths (name → result)."""
    true = [t.face for t in truths]
    results = [metrics.mouth_l2(faces, true, channels), metrics.mve(faces, true, channels),
               metrics.expression_l2(faces, true, channels),
               metrics.jitter(faces, fps),
               metrics.jitter([f[:, _mouth(channels)] for f in faces], fps, "jitter_mouth",
                              "the Jaw*/Mouth* channels")]
    if "JawOpen" in channels:
        results.append(metrics.jaw_open_correlation(faces, true, channels))
    if rig is not None:
        results += _vertex_metrics(rig, faces, true)
    closure = [metrics.lip_closure(f, channels, rig) for f in faces]
    true_closure = [metrics.lip_closure(f, channels, rig) for f in true]
    if any(t.bilabials for t in truths):
        results += metrics.bilabial_closure(
            true_closure, closure, [t.bilabials for t in truths], fps,
            closure="rig mouth openness" if rig is not None else "JawOpen")
    offsets = [metrics.av_offset(t.audio, SAMPLE_RATE, c, fps)
               for t, c in zip(truths, closure, strict=True)]
    true_offsets = [metrics.av_offset(t.audio, SAMPLE_RATE, c, fps)
                    for t, c in zip(truths, true_closure, strict=True)]
    results += [metrics.median_av_offset(offsets),
                metrics.av_offset_agreement(offsets, true_offsets)]
    if rig is not None and interval is not None:
        results += metrics.openness_distribution(closure, interval.low, interval.high)
    return {r.name: r for r in results}


def _mouth(channels: Sequence[str]) -> list[int]:
    return [channel_index(channels, name) for name in mouth_channels(channels)]


def _vertex_metrics(rig, faces: Sequence[np.ndarray], true: Sequence[np.ndarray]
                    ) -> list[metrics.MetricResult]:
    def vertices(clips):  # never yield inside `no_grad`: it would leak into the caller
        for face in clips:
            with torch.no_grad():
                found = rig.vertices(torch.from_numpy(np.array(face, np.float32))).numpy()
            yield found

    lve = metrics.lip_vertex_error(vertices(faces), vertices(true), rig.lip_idx, rig.lip_set)
    fdd = metrics.fdd(vertices(faces), vertices(true), rig.meanshape, rig.upper_idx,
                      rig.upper_set)
    return [*lve, *fdd]


def _add_ratios(scores: dict[str, dict[str, metrics.MetricResult]]) -> None:
    """Each system's jitter over ground truth's."""
    truth = scores[GROUND_TRUTH]
    for system in scores.values():
        for name in ("jitter", "jitter_mouth"):
            ratio = metrics.jitter_ratio(system[name], truth[name])
            system[ratio.name] = ratio


# --- the report -----------------------------------------------------------------------------


def report_dict(evaluation: Evaluation) -> dict[str, Any]:
    first = next(iter(evaluation.runs.values()))
    rig = first.rig
    return {
        "split": evaluation.split, "dataset": evaluation.dataset.origin,
        "clips": len(evaluation.truths),
        "frames": int(sum(len(t.face) for t in evaluation.truths)),
        "fps": evaluation.dataset.info.fps,
        "runs": {name: {"path": str(run.path), "checkpoint": run.checkpoint,
                        "step": run.step} for name, run in evaluation.runs.items()},
        "rig": None if rig is None else {"lip_set": rig.lip_set, "upper_set": rig.upper_set,
                                         "mouth_vertices": int(len(rig.mouth_idx))},
        "mouth_interval": first.info.mouth_interval,
        "skipped": dict(evaluation.skipped.counts),
        "notes": list(NOTES),
        "systems": {system: {name: _result_dict(r) for name, r in results.items()}
                    for system, results in evaluation.scores.items()},
    }


def _result_dict(result: metrics.MetricResult) -> dict[str, Any]:
    value = None if math.isnan(result.value) else result.value
    return {"value": value, "variant": result.variant, "units": result.units,
            "pooling": result.pooling, "count": result.count}


def markdown_table(report: dict[str, Any]) -> str:
    systems = list(report["systems"])
    names = list(dict.fromkeys(n for s in systems for n in report["systems"][s]))
    lines = [f"Evaluation on the {report['split']} split: {report['clips']} clips, "
             f"{report['frames']} frames at {report['fps']:g} fps.", "",
             "| metric | units | " + " | ".join(systems) + " |",
             "|---|---|" + "---|" * len(systems)]
    for name in names:
        units = next(report["systems"][s][name]["units"] for s in systems
                     if name in report["systems"][s])
        cells = [_cell(report["systems"][s].get(name)) for s in systems]
        lines.append(f"| {name} | {units} | " + " | ".join(cells) + " |")
    lines += ["", *(f"- {note}" for note in report["notes"])]
    return "\n".join(lines) + "\n"


def _cell(result: dict[str, Any] | None) -> str:
    if result is None or result["value"] is None:
        return "–"
    return f"{result['value']:.4g}"


def write_videos(evaluation: Evaluation, out: Path, count: int) -> list[Path]:
    """The first `count` clips rendered ground truth | first run side by side over their
    mouth curves, /p b m/ intervals and words, with their audio (`videos/KEY.mp4`), and a
    contact sheet of each clip's closures (`videos/KEY.closures.png`, where it has any)."""
    from unitaf_model.outputs.preview import (
        Timeline,
        write_closure_sheet,
        write_comparison_video,
    )

    system, run = next(iter(evaluation.runs.items()))
    if run.rig is None:
        raise ValueError(f"{run.path} has no vertex rig to render videos with")
    paths = []
    channels, fps = evaluation.dataset.info.channels, evaluation.dataset.info.fps
    for index, truth in enumerate(evaluation.truths[:count]):
        timeline = Timeline(truth.bilabials, truth.words)
        prediction = evaluation.faces[system][index]
        paths.append(write_comparison_video(
            out / "videos" / f"{truth.key}.mp4", run.rig, truth.face, prediction, channels,
            fps, truth.audio, SAMPLE_RATE, labels=(GROUND_TRUTH, system), timeline=timeline))
        sheet = write_closure_sheet(out / "videos" / f"{truth.key}.closures.png", run.rig,
                                    {GROUND_TRUTH: truth.face, system: prediction}, channels,
                                    fps, timeline)
        paths += [sheet] if sheet else []
    return paths


def openness_figure(evaluation: Evaluation, system: str):
    """Mouth closure (rig openness, or JawOpen) of `system` and ground truth, with the
    fitted interval the mouth-state loss normalises by."""
    from unitaf_model.evaluation.plots import openness_histogram

    run = evaluation.runs[system]
    channels = evaluation.dataset.info.channels
    values = {name: np.concatenate([metrics.lip_closure(f, channels, run.rig)
                                    for f in evaluation.faces[name]])
              for name in (GROUND_TRUTH, system)}
    interval = run.info.mouth_interval if run.rig is not None else None
    unit = "mouth openness (rig units)" if run.rig is not None else "JawOpen"
    return openness_histogram(values, interval, unit, f"mouth openness on {evaluation.split}: "
                              f"{system} vs ground truth")


def clip_figure(evaluation: Evaluation, system: str, index: int = 0):
    """One clip's JawOpen and mouth openness over time, prediction against ground truth,
    bilabial intervals shaded."""
    from unitaf_model.evaluation.plots import clip_curves

    run, truth = evaluation.runs[system], evaluation.truths[index]
    faces = {name: evaluation.faces[name][index] for name in (GROUND_TRUTH, system)}
    jaw = channel_index(evaluation.dataset.info.channels, "JawOpen")
    rows = {"JawOpen": {name: face[:, jaw] for name, face in faces.items()}}
    if run.rig is not None:
        rows["mouth openness"] = {name: run.rig.mouth_openness(face)
                                  for name, face in faces.items()}
    return clip_curves(rows, evaluation.dataset.info.fps, truth.bilabials,
                       f"{truth.key}: shaded = /p b m/ intervals")


def write_plots(evaluation: Evaluation, system: str, out: Path) -> dict[str, Path]:
    paths = {"openness_histogram": out / "openness_histogram.png",
             "clip_curves": out / "clip_curves.png"}
    openness_figure(evaluation, system).savefig(paths["openness_histogram"], dpi=110)
    clip_figure(evaluation, system).savefig(paths["clip_curves"], dpi=110)
    return paths


def write_report(evaluation: Evaluation, out: Path) -> dict[str, Path]:
    """eval.json, eval.md and the plots into `out` (a report folder the toolkit made, or a
    new or empty one: `unitaf_data.owned`; anything else is refused); returns their paths."""
    from unitaf_data import owned

    owned.claim(out, "report", "pass another --out for the report")
    report = report_dict(evaluation)
    paths = {"json": out / "eval.json", "markdown": out / "eval.md"}
    paths["json"].write_text(json.dumps(report, indent=2, ensure_ascii=False))
    paths["markdown"].write_text(markdown_table(report))
    first = next(iter(evaluation.runs))
    paths |= write_plots(evaluation, first, out)
    return paths
