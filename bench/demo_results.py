"""The README's result tables, regenerated: README command (1) over training seeds (issue 22).

Reads README command (1) from README.md itself and runs its steps through the real CLI, each
a timed subprocess: `unitaf-data build` and `extract-features` once (a finished folder is
reported and left), then per training seed its three `unitaf train` commands with `seed=S`
(into OUT/seedS/stageN). Each seed's stage III and stage II are scored with `unitaf eval
STAGE3 --compare STAGE2 --split SPLIT` on every held-out split of the dataset (every split
but train; with the demo corpus v2: unseen sentences `val`/`test`, the unseen speaker
`test_speaker`), the train-mean face and ground truth beside them, and on the test split
under listening conditions (`--conditions`). The tables give each metric's mean ± standard
deviation (ddof 1) over the seeds, with the git commit and the demo corpus version; they are
written into README.md between `<!-- results:begin -->` and `<!-- results:end -->` and, with
every per-seed value and the seconds of every step, into a JSON file.

    python bench/demo_results.py                 # 12-minute demo, seeds 0 1 2
    python bench/demo_results.py --quick         # 3-minute demo, 30 steps a stage, 2 seeds
    python bench/demo_results.py --quick --json /tmp/quick.json --no-readme   # README alone
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
CONDITIONS = ("clean", "noise20", "noise10", "telephone", "lead_silence")
STAGE3, STAGE2 = "stage3", "stage2"
SYSTEMS = (STAGE3, STAGE2, "train-mean face", "ground truth")
# (metric, what it is) rows of the split tables, in this order
SPLIT_ROWS = (
    ("lve_vs_mean_face", "lip vertex error / the train-mean face's"),
    ("lve", "lip vertex error (rig units²)"),
    ("mouth_l2", "lip/jaw/mouth blendshape L2"),
    ("jaw_open_correlation", "JawOpen Pearson r"),
    ("bcs", "BCS, arXiv 2606.13630 recipe (GT ≈ 0.95 by construction)"),
    ("closure_precision", "closure precision: closed speech frames inside /p b m/"),
    ("closure_outside_bilabials", "closed share of speech frames outside /p b m/"),
    ("closure_f1", "closure F1 (precision, BCS)"),
    ("bcs_rig_openness", "BCS recipe on the rig's mouth openness"),
    ("closure_frame_agreement", "earlier frame form, not the paper's BCS (GT 0.70)"),
    ("jitter_mouth_ratio", "mouth jitter / ground truth's"),
    ("jitter_ratio", "all-channel jitter / ground truth's"),
    ("silence_jaw_open_ratio", "JawOpen in silence / ground truth's rest"),
    ("silence_openness_ratio", "mouth openness in silence / ground truth's rest"),
    ("expression_l2", "expression-channel L2"),
    ("expression_l2_vs_mean_face", "expression-channel L2 / the train-mean face's"),
    ("av_offset_agreement", "AV lag within ±1 frame of ground truth's"),
)
CONDITION_ROWS = (
    ("lve_vs_clean", "lip vertex error / the clean condition's"),
    ("lve_vs_mean_face", "lip vertex error / the train-mean face's"),
    ("bcs", "BCS (recipe)"),
    ("closure_precision", "closure precision"),
    ("jaw_open_correlation", "JawOpen Pearson r"),
    ("silence_openness_ratio", "mouth openness in silence / GT rest"),
    ("noise_only_jaw_open_ratio", "JawOpen in the noise-only second / GT rest"),
    ("noise_only_openness_ratio", "mouth openness in the noise-only second / GT rest"),
)
QUICK_STEPS = ["steps=30", "val_every=30", "checkpoint_every=30", "warmup_steps=3"]


def cli(app: str, *args: str) -> float:
    """Run `unitaf` or `unitaf-data` with `args` as a subprocess of this Python; its seconds.
    A failure stops the script with the command and its exit status."""
    module = {"unitaf": "main_app", "unitaf-data": "data_app"}[app]
    command = [sys.executable, "-c", f"import sys; sys.argv[0] = {app!r}; "
               f"from unitaf_cli.{module} import app; app()", *args]
    print(f"$ {app} {' '.join(args)}", flush=True)
    start = time.perf_counter()
    status = subprocess.run(command, cwd=ROOT).returncode
    if status:
        sys.exit(f"`{app} {' '.join(args)}` failed with exit status {status}")
    return time.perf_counter() - start


def readme_command(readme: Path) -> list[list[str]]:
    """README command (1)'s build, extraction and training steps, as argument lists (the
    first line of the README that builds the demo, split at `&&`)."""
    line = next((line for line in readme.read_text().splitlines()
                 if "unitaf-data build --source demo" in line and "&&" in line), None)
    if line is None:
        sys.exit(f"{readme} has no README command (1) (a line running `unitaf-data build "
                 "--source demo ... && ...`)")
    steps = [shlex.split(part) for part in line.strip().split("&&")]
    wanted = [s for s in steps if s[:2] in (["unitaf-data", "build"],
                                            ["unitaf-data", "extract-features"],
                                            ["unitaf", "train"])]
    if [s[1] for s in wanted] != ["build", "extract-features", "train", "train", "train"]:
        sys.exit(f"README command (1) is not build, extract-features and three trainings: "
                 f"{line}")
    return wanted


def _substitute(step: list[str], data: Path, runs: Path, minutes: float) -> list[str]:
    """A README step on this script's dataset folder, run folder and demo minutes."""
    found = []
    for i, word in enumerate(step):
        if word == "demo-dataset":
            word = str(data)
        elif word.startswith("runs/"):
            word = str(runs / word.removeprefix("runs/"))
        elif i and step[i - 1] == "--demo-minutes":
            word = f"{minutes:g}"
        elif word.startswith("configs/"):
            word = str(ROOT / word)
        found.append(word)
    return found


def prepare(steps: list[list[str]], data: Path, minutes: float) -> dict[str, float]:
    """Build and extract once (both commands report a finished folder and leave it)."""
    return {step[1].split("-")[0]: cli(*_substitute(step, data, Path("runs"), minutes))
            for step in steps[:2]}


def train_seed(steps: list[list[str]], data: Path, out: Path, seed: int, extra: list[str]
               ) -> dict[str, float]:
    """README command (1)'s stages I, II and III with `seed=SEED` into OUT/seedN/."""
    return {f"stage{n}": cli(*_substitute(step, data, out / f"seed{seed}", 0.0),
                             f"seed={seed}", *extra)
            for n, step in enumerate(steps[2:], start=1)}


def score_seed(data: Path, out: Path, seed: int, splits: list[str]
               ) -> tuple[dict[str, Any], dict[str, Any], dict[str, float]]:
    """({split: {system: {metric: value}}}, {condition: {metric: value}} of stage III,
    seconds): `unitaf eval` per held-out split and the conditions on the test split."""
    folder = out / f"seed{seed}"
    found, seconds = {}, {}
    for split in splits:
        report = folder / "eval" / split
        seconds[f"eval_{split}"] = cli(
            "unitaf", "eval", str(folder / STAGE3), "--compare", str(folder / STAGE2),
            "--data", str(data), "--split", split, "--out", str(report),
            *(["--conditions", ",".join(CONDITIONS), "--seed", str(seed)]
              if split == "test" else []))
        systems = json.loads((report / "eval.json").read_text())["systems"]
        found[split] = {name: {metric: entry["value"] for metric, entry in metrics.items()}
                        for name, metrics in systems.items()}
    conditions = json.loads((folder / "eval" / "test" / "conditions.json").read_text())
    stage3 = {c: {m: e["value"] for m, e in systems[STAGE3].items()}
              for c, systems in conditions["conditions"].items()}
    for values in stage3.values():
        values["lve_vs_clean"] = _divide(values.get("lve"), stage3["clean"].get("lve"))
    return found, stage3, seconds


def _divide(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def spread(values: list[float | None]) -> str:
    known = [v for v in values if v is not None and not math.isnan(v)]
    if not known:
        return "–"
    if len(known) == 1:
        return f"{known[0]:.3g}"
    return f"{np.mean(known):.3g} ± {np.std(known, ddof=1):.2g}"


def split_table(per_seed: list[dict[str, Any]], split: str) -> str:
    lines = ["| metric | " + " | ".join(SYSTEMS) + " |", "|---|" + "---|" * len(SYSTEMS)]
    for metric, what in SPLIT_ROWS:
        cells = [spread([seed[split].get(system, {}).get(metric) for seed in per_seed])
                 for system in SYSTEMS]
        if any(cell != "–" for cell in cells):
            lines.append(f"| `{metric}`: {what} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def conditions_table(per_seed: list[dict[str, Any]]) -> str:
    lines = ["| stage III | " + " | ".join(CONDITIONS) + " |",
             "|---|" + "---|" * len(CONDITIONS)]
    for metric, what in CONDITION_ROWS:
        cells = [spread([seed[c].get(metric) for seed in per_seed]) for c in CONDITIONS]
        if any(cell != "–" for cell in cells):
            lines.append(f"| `{metric}`: {what} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def git_commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=False).stdout.strip()

    commit = git("rev-parse", "HEAD") or "unknown"
    changed = git("diff", "HEAD", "--name-only").split()
    return commit + (f" (with uncommitted changes to {', '.join(changed)})" if changed else "")


def corpus_version(data: Path) -> str:
    """The demo corpus version the dataset was built from: its build settings, or the
    corpus index the build wrote."""
    for path in (data / "unitaf.json", data / ".build" / "demo-corpus" / "corpus.json"):
        found = re.search(r'"corpus_version":\s*"?([\w.]+)"?',
                          path.read_text() if path.is_file() else "")
        if found:
            return found.group(1)
    return "unknown"


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    seeds = ", ".join(map(str, meta["seeds"]))
    lines = [f"Written by `{meta['command']}` at commit `{meta['commit']}`, demo corpus "
             f"version {meta['corpus_version']}, {meta['minutes']:g}-minute demo, training "
             f"seeds {seeds}: mean ± standard deviation over the seeds (one value: one seed). "
             f"Splits: {', '.join(f'{s} ({n} clips)' for s, n in meta['clips'].items())}."]
    for split in meta["splits"]:
        lines += ["", f"**{split} split** (`unitaf eval runs/stage3 --compare runs/stage2 "
                      f"--split {split}`):", "", split_table(results["seeds"], split)]
    if results["conditions"]:
        lines += ["", "**test split under listening conditions** (`unitaf eval runs/stage3 "
                      f"--conditions {','.join(CONDITIONS)}`):", "",
                  conditions_table(results["conditions"])]
    seconds = results["seconds"][0]
    command = sum(seconds[k] for k in ("build", "extract", "stage1", "stage2", "stage3"))
    lines += ["", "Seconds for seed " + str(meta["seeds"][0]) + ": " + ", ".join(
        f"{k} {v:.0f}" for k, v in seconds.items()) + f" (build to stage III: {command:.0f})."]
    return "\n".join(lines)


def write_readme(readme: Path, block: str) -> None:
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        sys.exit(f"{readme} has no {BEGIN} … {END} block to write the tables into")
    head, rest = text.split(BEGIN, 1)
    readme.write_text(f"{head}{BEGIN}\n{block}\n{END}{rest.split(END, 1)[1]}")


def held_out_splits(data: Path) -> tuple[list[str], dict[str, int]]:
    from unitaf_data.dataset import Dataset

    rows = Dataset.open_folder(data).manifest()
    clips: dict[str, int] = {}
    for row in rows:
        clips[row["split"]] = clips.get(row["split"], 0) + 1
    splits = sorted((s for s in clips if s != "train"), key=lambda s: (s != "test", s))
    if "test" not in splits:
        sys.exit(f"{data} has no test split")
    return splits, clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="dataset folder (demo-dataset; --quick: demo-dataset-quick)")
    parser.add_argument("--out", type=Path, default=None,
                        help="run folder (runs/results; --quick: runs/results-quick)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--minutes", type=float, default=None, help="demo minutes (12)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 3 minutes, 30 steps a stage, seeds 0 1")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--json", type=Path, default=ROOT / "docs" / "demo_results.json")
    parser.add_argument("--no-readme", action="store_true", help="write only the JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    seeds = args.seeds or ([0, 1] if args.quick else [0, 1, 2])
    minutes = args.minutes or (3.0 if args.quick else 12.0)
    extra = QUICK_STEPS if args.quick else []
    suffix = "-quick" if args.quick else ""
    args.data = args.data or ROOT / f"demo-dataset{suffix}"
    args.out = args.out or ROOT / "runs" / f"results{suffix}"
    steps = readme_command(args.readme)
    prepared = prepare(steps, args.data, minutes)
    splits, clips = held_out_splits(args.data)
    results: dict[str, Any] = {"meta": {
        "command": "python bench/demo_results.py" + (" --quick" if args.quick else ""),
        "commit": git_commit(), "corpus_version": corpus_version(args.data),
        "minutes": minutes, "seeds": seeds, "splits": splits, "clips": clips,
        "overrides": extra}, "seeds": [], "conditions": [], "seconds": []}
    for seed in seeds:
        seconds = {**(prepared if seed == seeds[0] else {}),
                   **train_seed(steps, args.data, args.out, seed, extra)}
        found, conditions, eval_seconds = score_seed(args.data, args.out, seed, splits)
        results["seeds"].append(found)
        results["conditions"].append(conditions)
        results["seconds"].append({**seconds, **eval_seconds})
    block = markdown(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False))
    if not args.no_readme:
        write_readme(args.readme, block)
    print(block)


if __name__ == "__main__":
    main()
