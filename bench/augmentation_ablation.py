"""Does feature-level augmentation fix the silent mouth without costing clean speech? (issue 22)

Stage I is trained once (shipped demo config, no augmentation) and stage II twice from it,
same data, same seeds: without augmentation (`augment_share=0`) and with it
(`augment_share=S`, on the `whisper_aug` copies of `unitaf-data extract-features --augment
N`); `--steps1/--steps2` shorten both stages alike when time is short. Both runs' best
checkpoints are then scored on a held-out split under three conditions made from each clip:

- `clean`: the clip as it is;
- `silence_lead`: one second of digital silence inserted before the clip, face at rest (the
  clip's first frame: clips start in a pause);
- `noise10_lead`: the same second, and room noise (pink) over everything at 10 dB SNR
  measured over the clip's own sound.

Per system and condition: LVE over the clip's own frames (ratio to the train-mean face's LVE
on clean clips), and in the non-speech frames (the inserted second, and the clip's pauses:
frames more than 60 ms from any phone) the mean rig mouth openness and JawOpen over ground
truth's there (its rest). The noise is seeded per clip, so both runs hear the same audio.

    python bench/augmentation_ablation.py --data demo-dataset --out runs/augment --split val
    # or the two stage-II runs side by side, then the scoring:
    python bench/augmentation_ablation.py ... --only stage1
    python bench/augmentation_ablation.py ... --only no_augment & \
        python bench/augmentation_ablation.py ... --only augment; wait
    python bench/augmentation_ablation.py ...
"""

from __future__ import annotations

import argparse
import json
import logging
import zlib
from pathlib import Path

import numpy as np
from mouth_ablation import stage1_run, stage2_run

CONDITIONS = ("clean", "silence_lead", "noise10_lead")
VARIANTS = ("no_augment", "augment")
LEAD_SECONDS = 1.0
SNR_DB = 10.0
PHONE_MARGIN_S = 0.06


def conditioned(audio: np.ndarray, face: np.ndarray, fps: float, condition: str, key: str
                ) -> tuple[np.ndarray, np.ndarray, int]:
    """The clip's audio and true face under `condition`, and the inserted lead's frames."""
    from unitaf_data.conditions import make_noise, mix_at_snr
    from unitaf_data.schema import SAMPLE_RATE

    if condition == "clean":
        return audio, face, 0
    lead = round(LEAD_SECONDS * fps)
    samples = round(lead * SAMPLE_RATE / fps)
    audio = np.concatenate([np.zeros(samples, np.float32), audio])
    face = np.concatenate([np.repeat(face[:1], lead, 0), face])
    if condition == "noise10_lead":
        rng = np.random.default_rng(zlib.crc32(key.encode()))
        mask = np.arange(len(audio)) >= samples
        noise = make_noise("room", len(audio), SAMPLE_RATE, rng)
        audio = mix_at_snr(audio.astype(np.float64), noise, SNR_DB, mask).astype(np.float32)
    return audio, face, lead


def pause_frames(phones, frames: int, fps: float) -> np.ndarray:
    """Frames (of the clip) whose centre is more than PHONE_MARGIN_S from every phone."""
    centres = (np.arange(frames) + 0.5) / fps
    quiet = np.ones(frames, bool)
    for phone in phones:
        quiet &= (centres < phone.start - PHONE_MARGIN_S) | (centres > phone.end + PHONE_MARGIN_S)
    return quiet


def evaluate(runs: dict[str, Path], data: Path, split: str) -> dict[str, dict[str, float]]:
    """{system/condition: {lve, openness_ratio, jaw_ratio}} plus the mean face's clean LVE."""
    import torch

    from unitaf_data.dataset import Dataset
    from unitaf_data.face import channel_index
    from unitaf_model.evaluation import metrics
    from unitaf_model.run import load_run
    from unitaf_model.synthesis.animate import AudioFrontEnd, animate

    loaded = {name: load_run(path) for name, path in runs.items()}
    front_ends = {name: AudioFrontEnd(run) for name, run in loaded.items()}
    first = next(iter(loaded.values()))
    rig, channels = first.rig, first.info.model.channels
    jaw = channel_index(channels, "JawOpen")
    template = first.model.template.numpy()
    dataset = Dataset.open_folder(data)
    fps = dataset.info.fps
    pooled: dict[str, dict[str, list]] = {}

    def vertices(face: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return rig.vertices(torch.from_numpy(np.asarray(face, np.float32))).numpy()

    def add(system: str, pred: np.ndarray, truth: np.ndarray, lead: int, quiet: np.ndarray
            ) -> None:
        found = pooled.setdefault(system, {"lve": [], "open": [], "open_true": [],
                                           "jaw": [], "jaw_true": []})
        speech = slice(lead, len(truth))
        error = np.square(vertices(pred[speech])[:, rig.lip_idx]
                          - vertices(truth[speech])[:, rig.lip_idx]).sum(-1).max(-1)
        found["lve"].append(error)
        still = np.concatenate([np.ones(lead, bool), quiet])
        found["open"].append(metrics.lip_closure(pred, channels, rig)[still])
        found["open_true"].append(metrics.lip_closure(truth, channels, rig)[still])
        found["jaw"].append(pred[still, jaw])
        found["jaw_true"].append(truth[still, jaw])

    for sample in dataset.samples(dataset.shards(split)):
        audio, speaker = sample.audio(), sample.meta.speaker
        quiet = pause_frames(sample.meta.phones or (), len(sample.face), fps)
        add("mean_face/clean", np.repeat(template[None], len(sample.face), 0), sample.face, 0,
            quiet)
        for condition in CONDITIONS:
            heard, truth, lead = conditioned(audio, sample.face, fps, condition, sample.key)
            for name, run in loaded.items():
                pred = animate(run, front_ends[name], heard, speaker, fps)[: len(truth)]
                add(f"{name}/{condition}", pred, truth[: len(pred)], lead, quiet[: len(pred)
                                                                                - lead])
    return {system: _summary(found) for system, found in pooled.items()}


def _summary(found: dict[str, list]) -> dict[str, float]:
    def mean(name: str) -> float:
        return float(np.concatenate(found[name]).mean())

    return {"lve": mean("lve"), "openness_ratio": mean("open") / mean("open_true"),
            "jaw_ratio": mean("jaw") / mean("jaw_true"), "openness": mean("open"),
            "openness_true": mean("open_true")}


def train_variant(args: argparse.Namespace, name: str) -> float:
    """Stage I (shared by both variants, without augmentation) and the variant's stage II;
    returns the training seconds of what this call trained."""
    steps1 = [f"steps={args.steps1}", f"warmup_steps={max(1, args.steps1 // 10)}",
              f"val_every={args.steps1}", f"checkpoint_every={args.steps1}"] \
        if args.steps1 else []
    steps2 = [f"steps={args.steps2}", f"warmup_steps={max(1, args.steps2 // 10)}",
              f"val_every={args.steps2}", f"checkpoint_every={args.steps2}"] \
        if args.steps2 else []
    init, seconds = stage1_run(args.data, args.out, [*steps1, "augment_share=0"])
    if name == "stage1":
        return seconds
    share = args.share if name == "augment" else 0.0
    run = args.out / name
    if (run / "best").exists():
        return 0.0
    return stage2_run(args.data, run, init, [*steps2, f"augment_share={share}"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--share", type=float, default=0.5, help="augment_share of the "
                        "augmented run's stage II")
    parser.add_argument("--steps1", type=int, default=0, help="stage-I steps (default: "
                        "the shipped config's)")
    parser.add_argument("--steps2", type=int, default=0, help="stage-II steps (default: "
                        "the shipped config's)")
    parser.add_argument("--only", choices=("stage1", *VARIANTS), help="train only this "
                        "(to run the two stage-II variants side by side) and exit")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only:
        print(f"{args.only}: {train_variant(args, args.only):.0f} s")
        return
    runs = {name: args.out / name for name in VARIANTS}
    for name in VARIANTS:
        train_variant(args, name)
    results = evaluate(runs, args.data, args.split)
    mean_lve = results["mean_face/clean"]["lve"]
    (args.out / f"results-{args.split}.json").write_text(json.dumps(
        {"split": args.split, "share": args.share, "steps1": args.steps1,
         "steps2": args.steps2, "results": results}, indent=1))
    print(f"split {args.split}; LVE ratio: to the train-mean face's clean LVE; openness and "
          "JawOpen ratio: prediction over ground truth in non-speech frames\n")
    print("| run | condition | LVE ratio | LVE vs own clean | openness ratio | JawOpen ratio |")
    print("|---|---|---|---|---|---|")
    for name in runs:
        clean = results[f"{name}/clean"]["lve"]
        for condition in CONDITIONS:
            found = results[f"{name}/{condition}"]
            print(f"| {name} | {condition} | {found['lve'] / mean_lve:.3f} | "
                  f"{found['lve'] / clean:.2f} | {found['openness_ratio']:.2f} | "
                  f"{found['jaw_ratio']:.2f} |")


if __name__ == "__main__":
    main()
