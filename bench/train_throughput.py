"""Training throughput: our streaming loader and training steps against a reference-style
loader that recomputes model features for every sample.

Measures, on the same demo clips: clips/s of the loader alone (main + sidecar shards joined
by key, resampled, bucketed, padded); of stage-I and stage-II training steps with the
`precomputed` backbone (pre-extracted 50 Hz features); and of a one-clip-at-a-time loader
that, like the reference code, decodes each clip and runs the feature models per sample:
the IndexTTS2 stack at its real sizes (random weights of the upstream classes: w2v-BERT 2.0
to layer 17, MaskGCT semantic codec, the GPT's conditioning and teacher-forced pass,
`gpt_layer`), the reference's second w2v-BERT pass, and the teacher encoder (WavLM-base-plus
size). Prints clips/s and the ratios.

    python bench/train_throughput.py --minutes 4
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from indextts2_models import write_random_indextts2  # noqa: E402


def prepare(work: Path, minutes: float) -> Path:
    from unitaf_data.extract import fit_units
    from unitaf_pipelines.build import BuildConfig, run_build
    from unitaf_pipelines.extract import ExtractConfig, run_extract

    out = work / "dataset"
    run_build(BuildConfig(source="demo", out_dir=out, demo_minutes=minutes, progress=False))
    fit_units(out, k=64)
    run_extract(ExtractConfig(dataset_dir=out, feature_sets=("whisper", "units"),
                              progress=False))
    return out


def loader_clips_per_second(dataset: Path, batches: int = 40) -> float:
    from unitaf_data.dataset import Dataset
    from unitaf_model.training.config import load_config
    from unitaf_model.training.data import loader

    config = load_config(data=str(dataset), out="unused", backbone="precomputed",
                         backbone_set="whisper", backbone_field="teacher.npy")
    stream = iter(loader(Dataset.open_folder(dataset), config.data_spec(), "train"))
    next(stream)
    clips, start = 0, time.perf_counter()
    for _ in range(batches):
        clips += len(next(stream)["keys"])
    return clips / (time.perf_counter() - start)


def training_clips_per_second(dataset: Path, work: Path, stage: int, steps: int = 30) -> float:
    from unitaf_model.training.config import load_config
    from unitaf_model.training.recipe import Recipe

    if stage == 2:
        init = work / "init"
        recipe = Recipe(load_config(data=str(dataset), out=str(init), steps=1,
                                    backbone="precomputed", backbone_set="whisper",
                                    backbone_field="teacher.npy", val_every=1000))
        recipe.setup()
        recipe.save_checkpoint()
    config = load_config(data=str(dataset), out=str(work / f"stage{stage}"), stage=stage,
                         init=str(work / "init") if stage == 2 else None, steps=steps + 5,
                         backbone="precomputed", backbone_set="whisper",
                         backbone_field="teacher.npy", val_every=10_000,
                         checkpoint_every=10_000)
    recipe = Recipe(config)
    recipe.setup()
    recipe.config.steps = 5
    recipe.train()  # warm-up steps (and the step-0 validation) outside the timing
    recipe.config.steps = steps + 5
    start = time.perf_counter()
    history = recipe.train()
    elapsed = time.perf_counter() - start
    return steps * config.batch_size / elapsed if len(history) else 0.0


def reference_clips_per_second(dataset: Path, work: Path, clips: int = 3) -> float:
    """Per sample: decode, the real-size IndexTTS2 stack, a second w2v-BERT pass, and one
    teacher-encoder pass."""
    from transformers import WavLMConfig, WavLMModel

    from unitaf_data.dataset import Dataset
    from unitaf_data.features import ClipInput, ExtractSettings, make_backend
    from unitaf_data.features.indextts2 import INDEXTTS2_SETS

    models = write_random_indextts2(work / "indextts2-real", size="real")
    stack = make_backend("indextts2", list(INDEXTTS2_SETS), ExtractSettings(
        dataset_dir=dataset, **{k: str(v) for k, v in models.items()}))
    teacher = WavLMModel(WavLMConfig()).eval()
    opened = Dataset.open_folder(dataset)
    samples = list(opened.samples(opened.shards()))[:clips]
    start = time.perf_counter()
    with torch.inference_mode():
        for sample in samples:
            audio = sample.audio()
            stack.extract([ClipInput(sample.key, audio, sample.meta.text,
                                     sample.meta.duration)])
            stack.semantic([audio])  # the reference computes w2v-BERT twice per sample
            teacher(torch.from_numpy(audio)[None])
    return len(samples) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="unitaf-train-bench-"))
    dataset = prepare(work, args.minutes)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = {"loader alone": loader_clips_per_second(dataset),
            "stage I steps": training_clips_per_second(dataset, work, 1),
            "stage II steps": training_clips_per_second(dataset, work, 2),
            "reference-style per-sample loader": reference_clips_per_second(dataset, work)}
    print(f"device: {device}\n\n| what | clips/s |\n|---|---|")
    for name, value in rows.items():
        print(f"| {name} | {value:.2f} |")
    reference = rows["reference-style per-sample loader"]
    print(f"\nstage I steps / reference loader: {rows['stage I steps'] / reference:.1f}x; "
          f"stage II: {rows['stage II steps'] / reference:.1f}x; loader alone: "
          f"{rows['loader alone'] / reference:.1f}x")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
