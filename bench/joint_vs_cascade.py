"""The UniTAF joint path against the cascade, on held-out Piper-spoken sentences (issue 20).

Data: a folder corpus spoken by the Piper voice (`unitaf_data.testing.write_piper_corpus`:
the demo's phoneme-driven ARKit face built from Piper's own phone timeline), its sentences
drawn from a small grammar rich in /p b m/ and split BY SENTENCE (test sentences are never
spoken in train or val), built with `unitaf-data build --source folder` and extracted with
`piper_latent` and `whisper`.

Systems, per seed, identical but for their input (same configs, same decoder, same data):
- joint: stage I + II on `piper_latent` (the Piper voice's own decoder-input latent,
  `configs/piper_stage*.yaml`): the face from the synthesis's own features;
- cascade: stage I + II on `whisper` (the Whisper tiny.en encoder states of the same Piper
  audio, `configs/demo_stage*.yaml`): speech first, then audio -> face.

Both are scored together on the test split as `unitaf eval RUN --compare RUN2` does, and
the table gives mean ± std (ddof 1) over the seeds. Timing, per test recording's text, on
this machine: the Piper synthesis's real-time factor, and the face latency per second of
speech once the audio exists (joint: projector + decoder on features the synthesis already
returned; cascade: the Whisper encoder, then projector + decoder).

    python bench/joint_vs_cascade.py --out runs/joint_vs_cascade --seeds 0 1 2

Training steps are the shipped configs' unless `--steps STAGE1 STAGE2`; runs, the corpus
and the dataset are reused when present (the seeds can be trained by parallel processes,
then scored together by one more call).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
from mouth_ablation import scores

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
METRICS = ("lve", "lve_ratio", "mouth_l2", "bcs", "closure_precision",
           "closure_interval_agreement", "jaw_open_correlation", "jitter_mouth_ratio",
           "av_offset", "av_offset_agreement")
SYSTEMS = {"joint": "piper", "cascade": "demo"}  # name: config prefix
SUBJECTS = ("The baker", "My brother", "A pilot", "The farmer", "Her mother", "The boy",
            "A painter", "The plumber", "Bob", "Pam", "The miner", "Our neighbor")
VERBS = ("bought", "moved", "packed", "painted", "brought", "pulled", "mended", "dropped",
         "picked up", "borrowed")
OBJECTS = ("a blue map", "the big box", "some plum jam", "a brown bag", "the paper boat",
           "a small pump", "the broken lamp", "a bottle of milk", "the maple bench",
           "a bunch of bananas")
PLACES = ("by the pond.", "near the market.", "in the basement.", "before the storm.",
          "after the game.", "at the museum.", "behind the barn.", "on Monday morning.")
SPLIT_SIZES = {"train": 64, "val": 8, "test": 16}


def sentences_by_split(seed: int = 0) -> dict[str, list[str]]:
    """Distinct grammar sentences, each in exactly one split."""
    pool = [" ".join(parts) for parts in itertools.product(SUBJECTS, VERBS, OBJECTS, PLACES)]
    order = np.random.default_rng(seed).permutation(len(pool))
    chosen = iter(pool[i] for i in order)
    return {split: [next(chosen) for _ in range(size)] for split, size in SPLIT_SIZES.items()}


def build_dataset(out: Path) -> Path:
    """The Piper-spoken dataset with `piper_latent` and `whisper` (each step skipped when
    done)."""
    from unitaf_data.sources import SourceOptions
    from unitaf_data.testing import write_piper_corpus
    from unitaf_pipelines.build import BuildConfig, run_build
    from unitaf_pipelines.extract import ExtractConfig, run_extract

    corpus, data = out / "corpus", out / "dataset"
    if not (corpus / "channels.txt").exists():
        partial = out / "corpus.partial"
        shutil.rmtree(partial, ignore_errors=True)
        write_piper_corpus(partial, sentences_by_split())
        partial.rename(corpus)
    if not (data / "unitaf.json").exists():
        run_build(BuildConfig(
            source="folder", input_dir=corpus, out_dir=data, progress=False,
            source_options=SourceOptions(face_fps=30.0, channel_names=str(
                corpus / "channels.txt"), split_pattern=r"^(?P<split>train|val|test)/")))
    if not (data / "features" / "piper_latent" / "feature.json").exists():
        run_extract(ExtractConfig(dataset_dir=data, feature_sets=["piper_latent", "whisper"],
                                  progress=False))
    return data


def train_system(data: Path, out: Path, system: str, seed: int, steps: tuple[int, int]
                 ) -> Path:
    """Stage I then II of one system and seed (`steps` of each); returns the stage-II run."""
    from unitaf_model.training.config import load_config
    from unitaf_model.training.launcher import train

    prefix = SYSTEMS[system]
    stage1, stage2 = out / f"{system}-seed{seed}-stage1", out / f"{system}-seed{seed}"
    for run, config, init, count in ((stage1, "stage1", None, steps[0]),
                                     (stage2, "stage2", stage1, steps[1])):
        if not (run / "best").exists():
            extra = {} if init is None else {"init": str(init)}
            overrides = [f"seed={seed}", f"steps={count}", f"checkpoint_every={count}",
                         f"val_every={min(100, count)}"]
            train(load_config(CONFIGS / f"{prefix}_{config}.yaml", overrides,
                              data=str(data), out=str(run), **extra))
    return stage2


def timings(data: Path, joint: Path, cascade: Path) -> dict[str, float]:
    """Piper's real-time factor and the face latency per second of speech of each system,
    over the test recordings' texts (seconds per second of speech)."""
    from unitaf_data import piper
    from unitaf_data.audio import resample
    from unitaf_data.features import frames_for
    from unitaf_data.schema import SAMPLE_RATE
    from unitaf_model.run import load_run
    from unitaf_model.synthesis.animate import AudioFrontEnd

    voice = piper.load_voice()
    joint_run, cascade_run = load_run(joint), load_run(cascade)
    front_end = AudioFrontEnd(cascade_run)
    texts = [" ".join(t) for t in _chunks(sentences_by_split()["test"], 4)]
    totals = {"speech_s": 0.0, "synthesis_s": 0.0, "joint_face_s": 0.0, "cascade_face_s": 0.0}
    for text in texts:
        clock = time.perf_counter()
        speech = piper.concatenate(list(piper.speak_sentences(voice, text)))
        totals["synthesis_s"] += time.perf_counter() - clock
        totals["speech_s"] += speech.duration
        audio = resample(speech.wav, speech.sample_rate, SAMPLE_RATE)
        clock = time.perf_counter()
        latent = piper.span_features(speech, 0.0, speech.duration,
                                     frames_for(len(audio)))["latent"].astype(np.float16)
        joint_run.predict(latent)
        totals["joint_face_s"] += time.perf_counter() - clock
        clock = time.perf_counter()
        cascade_run.predict_features(front_end.features(audio), None)
        totals["cascade_face_s"] += time.perf_counter() - clock
    speech_s = totals.pop("speech_s")
    return {f"{name[:-2]}_per_speech_s": value / speech_s for name, value in totals.items()} \
        | {"speech_s": speech_s}


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def table(values: dict[str, list[dict[str, float]]]) -> str:
    lines = ["| metric | joint: piper_latent (mean ± std) | cascade: whisper (mean ± std) | "
             "joint − cascade per seed (mean ± std) |", "|---|---|---|---|"]

    def spread(numbers: list[float]) -> str:
        return f"{np.mean(numbers):.4g} ± {np.std(numbers, ddof=1):.2g}"

    for metric in METRICS:
        j, c = [v[metric] for v in values["joint"]], [v[metric] for v in values["cascade"]]
        lines.append(f"| {metric} | {spread(j)} | {spread(c)} | "
                     f"{spread([a - b for a, b in zip(j, c, strict=True)])} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--split", default="test")
    parser.add_argument("--steps", type=int, nargs=2, default=[300, 300],
                        metavar=("STAGE1", "STAGE2"), help="training steps (the shipped "
                        "configs' 300 and 300 by default)")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS),
                        help="train only these (to train them in parallel processes); the "
                        "table needs both")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    data = build_dataset(args.out)
    values: dict[str, list[dict[str, float]]] = {name: [] for name in SYSTEMS}
    runs = {}
    for seed in args.seeds:
        runs = {name: train_system(data, args.out, name, seed, tuple(args.steps))
                for name in args.systems}
        if set(runs) != set(SYSTEMS):
            continue
        found = scores(list(runs.values()), data, args.split)
        for name, run in runs.items():
            values[name].append(found[run.name])
            print(f"seed {seed} {name}: " + ", ".join(
                f"{m} {found[run.name][m]:.4g}" for m in METRICS), flush=True)
    if set(args.systems) != set(SYSTEMS):
        return
    if len(args.seeds) > 1:
        print(table(values))
    timing = timings(data, runs["joint"], runs["cascade"])
    print(f"Piper synthesis RTF {timing['synthesis_per_speech_s']:.3f}; face latency per "
          f"second of speech: joint {timing['joint_face_per_speech_s'] * 1000:.1f} ms, "
          f"cascade {timing['cascade_face_per_speech_s'] * 1000:.1f} ms "
          f"(over {timing['speech_s']:.1f} s of held-out speech)")
    (args.out / "results.json").write_text(json.dumps({"values": values, "timing": timing},
                                                      indent=1))


if __name__ == "__main__":
    main()
