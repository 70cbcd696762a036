"""The mouth-state-aware vertex loss against plain vertex MSE, over seeds (issue 14).

For every seed: one stage-I run, then two stage-II runs from it that differ only in
`mouth_aware` (true: `w(n) = α|n − 0.5|^γ` on the mouth vertices; false: plain MSE). All runs
are then scored together on a split, exactly as

    unitaf eval RUN --compare RUN2 --compare RUN3 ... --split test

does (the train-mean face of the first run as the reference), and the table gives each
metric's mean ± standard deviation (ddof 1) over the seeds, and the per-seed difference
(mouth-aware − MSE) with its mean ± std, so whether the difference is larger than the seed
spread can be read off.

    python bench/mouth_loss_seeds.py --data DEMO --out runs/mouth_loss --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from mouth_ablation import scores, stage1_run, stage2_run

METRICS = ("bcs", "closure_precision", "closure_interval_agreement", "closed_share",
           "wide_open_share", "lve_ratio", "lve", "mouth_l2", "jaw_open_correlation",
           "jitter_mouth_ratio", "av_offset_agreement")
ARMS = {"mouth-aware": "mouth_aware=true", "plain MSE": "mouth_aware=false"}


def train_seeds(data: Path, out: Path, seeds: list[int]) -> dict[str, list[Path]]:
    runs: dict[str, list[Path]] = {arm: [] for arm in ARMS}
    for seed in seeds:
        init, _ = stage1_run(data, out, [f"seed={seed}"])
        for arm, override in ARMS.items():
            run = out / f"{arm.replace(' ', '_')}-seed{seed}"
            if not (run / "best").exists():
                stage2_run(data, run, init, [f"seed={seed}", override])
            runs[arm].append(run)
    return runs


def table(values: dict[str, list[dict[str, float]]]) -> str:
    aware, plain = values["mouth-aware"], values["plain MSE"]
    lines = ["| metric | mouth-aware (mean ± std) | plain MSE (mean ± std) | "
             "difference per seed (mean ± std) |", "|---|---|---|---|"]

    def spread(numbers: list[float]) -> str:
        return f"{np.mean(numbers):.4g} ± {np.std(numbers, ddof=1):.2g}"

    for metric in METRICS:
        a, p = [v[metric] for v in aware], [v[metric] for v in plain]
        lines.append(f"| {metric} | {spread(a)} | {spread(p)} | "
                     f"{spread([x - y for x, y in zip(a, p, strict=True)])} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    if len(args.seeds) < 2:
        parser.error("a spread needs at least two seeds")
    logging.basicConfig(level=logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    runs = train_seeds(args.data, args.out, args.seeds)
    ordered = [run for arm in ARMS for run in runs[arm]]
    found = scores(ordered, args.data, args.split)
    values = {arm: [found[run.name] for run in runs[arm]] for arm in ARMS}
    (args.out / f"seeds_{args.split}.json").write_text(json.dumps(
        {"seeds": args.seeds, "split": args.split, "runs": {
            arm: {run.name: found[run.name] for run in runs[arm]} for arm in ARMS}}, indent=1))
    print("unitaf eval " + " --compare ".join(str(r) for r in ordered) +
          f" --split {args.split}\n")
    print(table(values))


if __name__ == "__main__":
    main()
