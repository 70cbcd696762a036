"""What limits the demo model's mouth (issue 14): an ablation over config variants.

Each variant is a pair of `key=value` override lists on top of the shipped configs, one for
stage I (`configs/demo_stage1.yaml`) and one for stage II (`configs/demo_stage2.yaml`).
Both stages are trained on one dataset (stage-I runs are shared by the variants that ask for
the same stage-I overrides), and the checkpoint `unitaf eval` would pick is scored by
`unitaf_model.evaluation.evaluate` on a split. One markdown row per variant: LVE and
blendshape mouth error as ratios to the train-mean face, BCS (the paper's recipe), closure
precision, JawOpen r, mouth jitter over ground truth's, AV-offset agreement, closed /
wide-open shares, expression error, training seconds.
Results are appended to OUT/results.jsonl, so a rerun only trains what is missing.

    python bench/mouth_ablation.py --data DEMO --out runs/ablation --split val \
        --variants baseline units fps25
    python bench/mouth_ablation.py --data DEMO --out runs/ablation --list
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from pathlib import Path

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

UNITS = ["backbone=units", "backbone_set=units", "backbone_field=units.npy"]
LONG = ["steps=1200", "warmup_steps=60"]

# name: (stage-I overrides, stage-II overrides) on top of the shipped demo configs
VARIANTS: dict[str, tuple[list[str], list[str]]] = {
    "baseline": ([], []),
    # input and frame grid
    "units": (UNITS, UNITS),
    "units_fps25": (UNITS, [*UNITS, "fps=25"]),
    "fps25": ([], ["fps=25"]),
    # loss
    "plain_mse": ([], ["mouth_aware=false"]),
    "alpha_1": ([], ["mouth_alpha=1"]),
    "alpha_10": ([], ["mouth_alpha=10"]),
    "gamma_1": ([], ["mouth_gamma=1"]),
    "gamma_4": ([], ["mouth_gamma=4"]),
    "coverage_0.8": ([], ["mouth_coverage=0.8"]),
    "coverage_0.99": ([], ["mouth_coverage=0.99"]),
    "lambda_0.3": ([], ["vertex_weight=0.3"]),
    "lambda_3": ([], ["vertex_weight=3"]),
    # receptive field
    "dilation_2": ([], ["decoder_dilation=2"]),
    # optimisation
    "stage1_100": (["steps=100"], []),
    "stage2_150": ([], ["steps=150"]),
    "stage2_600": ([], ["steps=600"]),
    "stage2_1200": ([], LONG),
    "alpha_5_1200": ([], [*LONG, "mouth_alpha=5"]),
    "alpha_10_1200": ([], [*LONG, "mouth_alpha=10"]),
    "velocity_1_1200": ([], [*LONG, "velocity_weight=1"]),
    "lr_5e-4": ([], ["lr=5e-4"]),
    "lr_2e-3": ([], ["lr=2e-3"]),
    "batch_4": ([], ["batch_size=4"]),
    "batch_16": ([], ["batch_size=16"]),
    # over-fitting
    "dropout_0": ([], ["decoder_dropout=0"]),
    "dropout_0.3": ([], ["decoder_dropout=0.3"]),
    "weight_decay_0.5": ([], ["weight_decay=0.5"]),
}

COLUMNS = ("lve_ratio", "mouth_l2_ratio", "bcs", "closure_precision",
           "closure_interval_agreement", "jaw_open_correlation", "jitter_mouth_ratio",
           "av_offset_agreement", "closed_share", "wide_open_share", "expression_l2", "fdd")


def stage1_run(data: Path, out: Path, overrides: list[str]) -> tuple[Path, float]:
    """The stage-I run of these overrides (trained once, shared), and its training seconds."""
    from unitaf_model.training.config import load_config
    from unitaf_model.training.launcher import train

    digest = hashlib.sha256(json.dumps([str(data.resolve()), overrides]).encode()
                            ).hexdigest()[:10]
    run = out / f"stage1-{digest}"
    timing = run / "seconds.json"
    if not timing.exists():
        start = time.perf_counter()
        train(load_config(CONFIGS / "demo_stage1.yaml", overrides, data=str(data),
                          out=str(run)))
        timing.write_text(json.dumps({"seconds": time.perf_counter() - start,
                                      "overrides": overrides}))
    return run, json.loads(timing.read_text())["seconds"]


def stage2_run(data: Path, run: Path, init: Path, overrides: list[str]) -> float:
    """Train stage II into `run` from `init`; returns the training seconds."""
    from unitaf_model.training.config import load_config
    from unitaf_model.training.launcher import train

    start = time.perf_counter()
    train(load_config(CONFIGS / "demo_stage2.yaml", overrides, data=str(data),
                      out=str(run), init=str(init)))
    return time.perf_counter() - start


def scores(runs: list[Path], data: Path, split: str, checkpoint: str = "best"
           ) -> dict[str, dict[str, float]]:
    """Every run (and the train-mean face) scored together, as `unitaf eval --compare`
    does: metric values by system name, plus the ratios to the train-mean face."""
    from unitaf_data.hub import open_dataset
    from unitaf_model.evaluation.evaluate import MEAN_FACE, evaluate
    from unitaf_model.run import load_run

    loaded = [load_run(run, checkpoint) for run in runs]
    evaluation = evaluate(loaded, open_dataset(data), split)
    mean = evaluation.scores[MEAN_FACE]
    found = {}
    for name, results in evaluation.scores.items():
        values = {metric: result.value for metric, result in results.items()}
        for metric in ("lve", "mouth_l2"):
            values[f"{metric}_ratio"] = values[metric] / mean[metric].value
        found[name] = values
    found["steps"] = {name: run.step for name, run in evaluation.runs.items()}
    return found


def row(name: str, values: dict[str, float]) -> str:
    return f"| {name} | " + " | ".join(f"{values.get(c, float('nan')):.3g}"
                                       for c in COLUMNS) + " |"


def header(first: str = "variant") -> str:
    return f"| {first} | " + " | ".join(COLUMNS) + " |\n|---|" + "---|" * len(COLUMNS)


def run_variant(name: str, data: Path, out: Path, split: str) -> dict:
    stage1, stage2 = VARIANTS[name]
    init, seconds1 = stage1_run(data, out, stage1)
    run = out / name
    seconds2 = stage2_run(data, run, init, stage2) if not (run / "best").exists() else \
        float("nan")
    values = scores([run], data, split)[run.name]
    return {"variant": name, "split": split, "stage1": stage1, "stage2": stage2,
            "seconds": seconds1 + seconds2, **values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--list", action="store_true", help="print the variants and exit")
    args = parser.parse_args()
    if args.list:
        for name, (stage1, stage2) in VARIANTS.items():
            print(f"{name}: stage I {' '.join(stage1) or '-'}; stage II {' '.join(stage2) or '-'}")
        return
    logging.basicConfig(level=logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.jsonl"
    done = {(r["variant"], r["split"]): r for r in map(json.loads, results.read_text()
                                                        .splitlines())} \
        if results.exists() else {}
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        sys.exit(f"unknown variants: {', '.join(unknown)} (see --list)")
    print(header())
    for name in args.variants:
        if (name, args.split) not in done:
            done[name, args.split] = run_variant(name, args.data, args.out, args.split)
            with results.open("a") as handle:
                handle.write(json.dumps(done[name, args.split]) + "\n")
        print(row(name, done[name, args.split]), flush=True)


if __name__ == "__main__":
    main()
