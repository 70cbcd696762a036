"""Training throughput: our streaming loader and training steps against a reference-style
loader that recomputes model features for every sample.

Measures, on the same demo clips: clips/s of the loader alone (main + sidecar shards joined
by key, resampled, bucketed, padded); of stage-I and stage-II training steps with the
`precomputed` backbone (pre-extracted 50 Hz features); and of a one-clip-at-a-time loader
that, like the reference code, decodes each clip and runs the feature models per sample:
two w2v-BERT 2.0 passes (real size, random weights, up to layer 17) and the teacher encoder
(WavLM-base-plus size, random weights). IndexTTS2's GPT and semantic codec are not in that
per-sample cost (their package cannot be imported on these CPU machines), so the ratio is a
lower bound. Prints clips/s and the ratios.

    python bench/train_throughput.py --minutes 4
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


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
    from unitaf_model.config import load_config
    from unitaf_model.data import loader

    config = load_config(data=str(dataset), out="unused", backbone="precomputed",
                         backbone_set="whisper", backbone_field="teacher.npy")
    stream = iter(loader(config.data_spec(dataset), "train"))
    next(stream)
    clips, start = 0, time.perf_counter()
    for _ in range(batches):
        clips += len(next(stream)["keys"])
    return clips / (time.perf_counter() - start)


def training_clips_per_second(dataset: Path, work: Path, stage: int, steps: int = 30) -> float:
    from unitaf_model.config import load_config
    from unitaf_model.train import Recipe

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


def reference_clips_per_second(dataset: Path, clips: int = 3) -> float:
    """Per sample: decode, two w2v-BERT passes (17 layers), one teacher-encoder pass."""
    from transformers import (
        SeamlessM4TFeatureExtractor,
        Wav2Vec2BertConfig,
        Wav2Vec2BertModel,
        WavLMConfig,
        WavLMModel,
    )

    from unitaf_data.audio import decode_flac
    from unitaf_data.extract import main_shards
    from unitaf_data.shards import read_tar

    w2v_bert = Wav2Vec2BertModel(Wav2Vec2BertConfig(num_hidden_layers=17)).eval()
    teacher = WavLMModel(WavLMConfig()).eval()
    features = SeamlessM4TFeatureExtractor()
    samples = [s for shard in main_shards(dataset) for s in read_tar(shard)][:clips]
    start = time.perf_counter()
    with torch.inference_mode():
        for sample in samples:
            audio, _ = decode_flac(sample["flac"])
            inputs = features(audio.astype(np.float32), sampling_rate=16000,
                              return_tensors="pt")
            for _ in range(2):  # semantic codes pass and conditioning pass
                w2v_bert(**inputs)
            teacher(torch.from_numpy(audio.astype(np.float32))[None])
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
            "reference-style per-sample loader": reference_clips_per_second(dataset)}
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
