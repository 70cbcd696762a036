"""Evaluation under listening conditions: how a run's accuracy degrades when its audio does.

`evaluate_conditions(run, dataset, split, conditions)` degrades every clip's audio on the fly
(seeded per clip and condition), recomputes the run's input from it with the run's own front
end (`unitaf_model.synthesis.animate.AudioFrontEnd`: the features extraction would have stored
for that audio), predicts the face and scores it with the same functions as `unitaf eval`
(`evaluate.score_systems`) against ground truth and the train-mean face. Conditions:

- `clean`: the clip as it is (the front end recomputes exactly what the sidecars hold);
- `noise20`, `noise10`: room-like noise (pink noise, low-passed) mixed at 20 / 10 dB SNR;
- `telephone`: a 300–3400 Hz channel at 8 kHz, then back to 16 kHz;
- `lead_silence`: one second of that noise alone before the speech (noise at 20 dB SNR
  throughout); the face is held at the clip's first ground-truth frame (the clips start in a
  pause) and the phones move by a second, and `noise_only_*` is the mouth openness over that
  second, to compare with ground truth's rest.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from unitaf_data.conditions import make_noise, mix_at_snr, telephone
from unitaf_data.dataset import Dataset
from unitaf_data.schema import SAMPLE_RATE
from unitaf_model.evaluation import metrics
from unitaf_model.evaluation.evaluate import (
    GROUND_TRUTH,
    MEAN_FACE,
    Truth,
    result_dict,
    score_systems,
    truth_of,
)
from unitaf_model.run import LoadedRun

LEAD_SECONDS = 1.0
NOTE = ("Each clip's audio is degraded (seeded by seed, condition and clip) and the run's "
        "input recomputed from it by the run's own front end; noise20/noise10: room-like "
        "noise at 20/10 dB SNR; telephone: 300-3400 Hz at 8 kHz; lead_silence: one second "
        "of that noise alone before the speech (20 dB SNR), ground truth holding its first "
        "frame, noise_only_* the mouth over that second.")
CONDITIONS = ("clean", "noise20", "noise10", "telephone", "lead_silence")
# what the conditions table shows, in this order, where the report has it
TABLE = ("lve", "lve_vs_mean_face", "mouth_l2", "jaw_open_correlation", "bcs",
         "closure_precision", "closure_outside_bilabials", "jitter_mouth_ratio",
         "silence_jaw_open_ratio", "silence_openness_ratio", "noise_only_jaw_open_ratio",
         "noise_only_openness_ratio", "expression_l2_vs_mean_face")


@dataclass(frozen=True)
class Degraded:
    """One clip under one condition: its audio, and the seconds of noise put before it."""

    audio: np.ndarray
    lead_seconds: float = 0.0


def degrade(audio: np.ndarray, condition: str, rng: np.random.Generator) -> Degraded:
    """`audio` (16 kHz mono) under `condition` (one of `CONDITIONS`)."""
    audio = np.asarray(audio, np.float32)
    if condition == "clean":
        return Degraded(audio)
    if condition in ("noise20", "noise10"):
        noise = make_noise("room", len(audio), SAMPLE_RATE, rng)
        return Degraded(mix_at_snr(audio, noise, float(condition[5:])).astype(np.float32))
    if condition == "telephone":
        return Degraded(telephone(audio, SAMPLE_RATE).astype(np.float32))
    if condition == "lead_silence":
        lead = round(LEAD_SECONDS * SAMPLE_RATE)
        padded = np.concatenate([np.zeros(lead, np.float32), audio])
        speech = np.arange(len(padded)) >= lead  # the SNR is the speech's, as in noise20
        noise = make_noise("room", len(padded), SAMPLE_RATE, rng)
        return Degraded(mix_at_snr(padded, noise, 20.0, speech).astype(np.float32),
                        LEAD_SECONDS)
    raise ValueError(f"unknown condition {condition!r}; known: {', '.join(CONDITIONS)}")


def condition_rng(seed: int, condition: str, clip: int) -> np.random.Generator:
    """The generator of clip `clip` (its place in the split) under `condition`: by name, so
    a condition draws the same noise whichever other conditions are asked for."""
    return np.random.default_rng([seed, zlib.crc32(condition.encode()), clip])


def parse_conditions(text: str) -> list[str]:
    """`clean,noise10` → ["clean", "noise10"]; ValueError naming an unknown one."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONDITIONS]
    if unknown or not names:
        raise ValueError(f"unknown condition(s) {', '.join(unknown) or '(none)'}; known: "
                         f"{', '.join(CONDITIONS)}")
    return list(dict.fromkeys(names))


def _shifted(truth: Truth, lead: float, fps: float) -> Truth:
    """The truth of a clip with `lead` seconds of rest before it: the first frame held, the
    phones, words and bilabials moved."""
    frames = round(lead * fps)
    if not frames:
        return truth
    face = np.concatenate([np.repeat(truth.face[:1], frames, 0), truth.face])
    phones = [(label, start + lead, end + lead) for label, start, end in truth.phones]
    words = [(word, start + lead, end + lead) for word, start, end in truth.words]
    bilabials = [(start + lead, end + lead) for start, end in truth.bilabials]
    return replace(truth, face=face, phones=phones, words=words, bilabials=bilabials)


def _noise_only(faces: Sequence[np.ndarray], frames: int, channels: Sequence[str], rig
                ) -> list[metrics.MetricResult]:
    """`noise_only_*`: the mouth openness over the first `frames` frames (noise alone)."""
    found = metrics.rest_in_silence([f[:frames] for f in faces], [[] for _ in faces], 1.0,
                                    channels, rig)
    return [replace(r, name=r.name.replace("silence_", "noise_only_"),
                    variant=r.variant.replace("frames at least", "the leading noise-only "
                                              "second (frames at least") + ")")
            for r in found]


def evaluate_conditions(run: LoadedRun, dataset: Dataset, split: str,
                        conditions: Sequence[str], seed: int = 0
                        ) -> dict[str, dict[str, dict[str, metrics.MetricResult]]]:
    """{condition: {system: {metric: result}}} for `run`, the train-mean face and ground truth
    on `split` (a residual on the emotion label is given each clip's corpus label, as
    `unitaf eval` does)."""
    from unitaf_model.synthesis.animate import AudioFrontEnd, face_on_grid

    front_end = AudioFrontEnd(run)
    truths = [truth_of(s) for s in dataset.samples(dataset.shards(split), {}, None)
              if not s.refused]
    if not truths:
        raise ValueError(f"no clip of the {split} split could be evaluated")
    fps, channels = dataset.info.fps, dataset.info.channels
    template = run.model.template.numpy()
    name = run.path.name
    results = {}
    for condition in conditions:
        shifted, faces, lead = [], [], 0
        for clip, truth in enumerate(truths):
            degraded = degrade(truth.audio, condition, condition_rng(seed, condition, clip))
            moved = _shifted(truth, degraded.lead_seconds, fps)
            lead = round(degraded.lead_seconds * fps)
            faces.append(face_on_grid(run, front_end.features(degraded.audio),
                                      truth.speaker, fps, len(moved.face), truth.emotion))
            shifted.append(moved)
        systems = {name: faces, MEAN_FACE: [np.repeat(template[None], len(t.face), 0)
                                            for t in shifted],
                   GROUND_TRUTH: [t.face for t in shifted]}
        scores = score_systems(shifted, systems, channels, fps, run.rig, run.interval())
        if lead:
            _add_noise_only(scores, systems, lead, channels, run.rig)
        results[condition] = scores
    return results


def _add_noise_only(scores, systems, frames: int, channels, rig) -> None:
    for system, faces in systems.items():
        for result in _noise_only(faces, frames, channels, rig):
            scores[system][result.name] = result
    rest = scores[GROUND_TRUTH]  # ground truth's rest in the same stretch
    for system in scores.values():
        for name in ("noise_only_jaw_open", "noise_only_openness"):
            if name in system and name in rest:
                found = metrics.ratio(system[name], rest[name], "ground truth's rest")
                system[found.name] = found


def conditions_report(scores: dict[str, dict[str, dict[str, metrics.MetricResult]]],
                      run: str, split: str, seed: int) -> dict[str, Any]:
    return {"split": split, "run": run, "seed": seed, "lead_seconds": LEAD_SECONDS,
            "conditions": {condition: {system: {n: result_dict(r) for n, r in found.items()}
                                       for system, found in systems.items()}
                           for condition, systems in scores.items()},
            "notes": [NOTE]}


def conditions_table(report: dict[str, Any]) -> str:
    """One table for the run: a row per metric, a column per condition."""
    conditions = list(report["conditions"])
    run = report["run"]
    lines = [f"{run} on the {report['split']} split under listening conditions (seed "
             f"{report['seed']}):", "",
             "| metric | " + " | ".join(conditions) + " |",
             "|---|" + "---|" * len(conditions)]
    for name in TABLE:
        cells = [report["conditions"][c][run].get(name) for c in conditions]
        if all(cell is None for cell in cells):
            continue
        lines.append(f"| {name} | " + " | ".join(
            "–" if c is None or c["value"] is None else f"{c['value']:.4g}" for c in cells)
            + " |")
    return "\n".join(lines) + "\n"


def write_conditions(scores, run: str, split: str, seed: int, out: Path) -> dict[str, Path]:
    """conditions.json and conditions.md into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    report = conditions_report(scores, run, split, seed)
    paths = {"json": out / "conditions.json", "markdown": out / "conditions.md"}
    paths["json"].write_text(json.dumps(report, indent=2, ensure_ascii=False))
    paths["markdown"].write_text(conditions_table(report))
    return paths
