"""Stage-II variants against the shipped demo configs, scored as the results block is.

Each variant is a name and a list of `key=value` overrides of `configs/demo_stage2.yaml`.
Per variant and training seed: stage II from a finished stage-I run (by default the one
`bench/demo_results.py` left in runs/results/seedS/stage1), stage III from
`configs/demo_stage3.yaml` on it, then `unitaf eval STAGE3 --compare STAGE2` on the test
split (with the results block's listening conditions) and on val, all through the real CLI
as timed subprocesses. A step whose output exists is not run again: a finished variant is
scored from its reports. One markdown row per variant and seed:

    python bench/stage2_variants.py --variant shipped \\
        --variant cw1 closure_weight=1 best_metric=vertex
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from demo_results import CONDITIONS, CONFIGS, ROOT, STAGE2, STAGE3, cli

# (column, split, system, metric): what a row holds, in this order
COLUMNS = (
    ("test: lip error / mean face (III)", "test", STAGE3, "lve_vs_mean_face"),
    ("test BCS (III)", "test", STAGE3, "bcs"),
    ("test BCS (II)", "test", STAGE2, "bcs"),
    ("closure precision (III; GT 0.634)", "test", STAGE3, "closure_precision"),
    ("JawOpen r (III)", "test", STAGE3, "jaw_open_correlation"),
    ("mouth jitter / GT (III)", "test", STAGE3, "jitter_mouth_ratio"),
    ("10 dB / clean lip error", "noise10", STAGE3, "lve_vs_clean"),
    ("val: lip error / mean face (III)", "val", STAGE3, "lve_vs_mean_face"),
    ("val BCS (III)", "val", STAGE3, "bcs"),
)


def train_variant(data: Path, stage1: Path, out: Path, seed: int, overrides: list[str]
                  ) -> dict[str, float]:
    """Stage II with `overrides`, stage III, and their eval reports in OUT (each step only
    where its output is missing); seconds of the steps run."""
    seconds = {}
    if not (out / STAGE3 / "best").exists():
        seconds["stage2"] = cli("unitaf", "train", "--data", str(data), "--out",
                                str(out / STAGE2), "--init", str(stage1), "--config",
                                str(CONFIGS / "demo_stage2.yaml"), f"seed={seed}",
                                *overrides)
        seconds["stage3"] = cli("unitaf", "train", "--data", str(data), "--out",
                                str(out / STAGE3), "--init", str(out / STAGE2), "--config",
                                str(CONFIGS / "demo_stage3.yaml"), f"seed={seed}")
    for split in ("test", "val"):
        if not (out / "eval" / split / "eval.json").exists():
            # the results block's conditions, so that a variant's row reads beside it
            cli("unitaf", "eval", str(out / STAGE3), "--compare", str(out / STAGE2),
                "--data", str(data), "--split", split, "--out", str(out / "eval" / split),
                *(["--conditions", ",".join(CONDITIONS), "--seed", str(seed)]
                  if split == "test" else []))
    return seconds


def scores(out: Path) -> dict[str, dict[str, dict[str, float]]]:
    """{split or condition: {system: {metric: value}}} of a variant's eval reports."""
    found = {}
    for split in ("test", "val"):
        systems = json.loads((out / "eval" / split / "eval.json").read_text())["systems"]
        found[split] = {name: {m: e["value"] for m, e in metrics.items()}
                        for name, metrics in systems.items()}
    conditions = json.loads((out / "eval" / "test" / "conditions.json").read_text())
    clean = conditions["conditions"]["clean"][STAGE3]["lve"]["value"]
    noisy = conditions["conditions"]["noise10"][STAGE3]["lve"]["value"]
    found["noise10"] = {STAGE3: {"lve_vs_clean": noisy / clean}}
    return found


def row(name: str, seed: int, found: dict[str, Any]) -> str:
    cells = [found.get(split, {}).get(system, {}).get(metric) for _, split, system, metric
             in COLUMNS]
    return f"| {name} | {seed} | " + " | ".join(
        "–" if c is None else f"{c:.3f}" for c in cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", nargs="+", action="append", required=True,
                        metavar="NAME [KEY=VALUE ...]",
                        help="a variant: its name, then its stage-II overrides")
    parser.add_argument("--data", type=Path, default=ROOT / "demo-dataset")
    parser.add_argument("--stage1", type=Path, default=ROOT / "runs" / "results" / "seed{seed}"
                        / "stage1", help="stage-I run ({seed}: the training seed)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "stage2_variants")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    rows = []
    for name, *overrides in args.variant:
        for seed in args.seeds:
            out = args.out / name / f"seed{seed}"
            stage1 = Path(str(args.stage1).format(seed=seed))
            seconds = train_variant(args.data, stage1, out, seed, overrides)
            found = scores(out)
            rows.append(row(name, seed, found))
            record = {"variant": name, "overrides": overrides, "seed": seed,
                      "seconds": seconds, "scores": found}
            with open(args.out / "results.jsonl", "a") as log:
                log.write(json.dumps(record) + "\n")
    print("| variant | seed | " + " | ".join(c[0] for c in COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
