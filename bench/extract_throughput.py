"""Feature extraction: one clip at a time (as the reference training code computes features
inside its data loader) against the batched `extract-features` pipeline, on the same clips.

Backends: `whisper` (the offline Whisper tiny.en encoder) and `unitalker` (a UniTalker-B-size
WavLM-base-plus audio encoder with random weights, saved in UniTalker's checkpoint layout and
loaded by the real loader). Also prints the per-clip cost of w2v-BERT 2.0 at its real size
(random weights), the first and most expensive stage of the IndexTTS2 feature stack.

    python bench/extract_throughput.py --minutes 3
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def demo_dataset(work: Path, minutes: float) -> Path:
    from unitaf_pipelines.build import BuildConfig, run_build

    out = work / "dataset"
    run_build(BuildConfig(source="demo", out_dir=out, demo_minutes=minutes, seed=0,
                          progress=False))
    return out


def unitalker_b_checkpoint(path: Path) -> Path:
    """WavLM-base-plus-size encoder, random weights, under UniTalker's `audio_encoder.` keys."""
    from transformers import WavLMConfig, WavLMModel

    torch.manual_seed(0)
    model = WavLMModel(WavLMConfig())  # transformers' defaults are the base size (768, 12)
    torch.save({f"audio_encoder.{k}": v for k, v in model.state_dict().items()}, path)
    return path


def one_at_a_time(dataset: Path, backend: str, checkpoint: Path | None) -> tuple[int, float]:
    """(clips, seconds): load the model once (timed), then one clip per forward pass."""
    from unitaf_data.extract import main_shards, read_clips
    from unitaf_data.features import ExtractSettings, make_backend

    clips = [c for shard in main_shards(dataset) for c in read_clips(shard)]
    start = time.perf_counter()
    sets = ["whisper"] if backend == "offline" else ["unitalker"]
    model = make_backend(backend, sets, ExtractSettings(
        dataset_dir=dataset, unitalker_ckpt=str(checkpoint) if checkpoint else None))
    for clip in clips:
        model.extract([clip])
    return len(clips), time.perf_counter() - start


def pipeline(dataset: Path, feature_set: str, checkpoint: Path | None) -> float:
    """Seconds of `extract-features` on Ray (actor start, model loads, shard reading and
    writing included; Ray itself is already running)."""
    from unitaf_pipelines.extract import ExtractConfig, run_extract

    shutil.rmtree(dataset / "features", ignore_errors=True)
    start = time.perf_counter()
    run_extract(ExtractConfig(dataset_dir=dataset, feature_sets=(feature_set,),
                              unitalker_ckpt=str(checkpoint) if checkpoint else None,
                              progress=False))
    return time.perf_counter() - start


def w2v_bert_per_clip(seconds: float = 8.0, repeats: int = 3) -> float:
    """Seconds per clip of w2v-BERT 2.0 (600M, random weights) up to hidden layer 17."""
    from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2BertConfig, Wav2Vec2BertModel

    config = Wav2Vec2BertConfig(num_hidden_layers=17)  # later layers are not needed
    model = Wav2Vec2BertModel(config).eval()
    features = SeamlessM4TFeatureExtractor()(np.random.default_rng(0).normal(
        size=int(16000 * seconds)).astype(np.float32), sampling_rate=16000, return_tensors="pt")
    with torch.inference_mode():
        model(**features)
        start = time.perf_counter()
        for _ in range(repeats):
            model(**features)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="unitaf-extract-bench-"))
    dataset = demo_dataset(work, args.minutes)
    checkpoint = unitalker_b_checkpoint(work / "unitalker-b.pt")
    print(f"device: {'cuda' if torch.cuda.is_available() else 'cpu'}, "
          f"{torch.get_num_threads()} torch threads\n")
    print("| backend | clips | one at a time (clips/s) | extract-features (clips/s) | ratio |")
    print("|---|---|---|---|---|")
    for backend, feature_set, ckpt in (("offline", "whisper", None),
                                       ("unitalker", "unitalker", checkpoint)):
        clips, single = one_at_a_time(dataset, backend, ckpt)
        batched = pipeline(dataset, feature_set, ckpt)
        print(f"| {feature_set} | {clips} | {clips / single:.2f} | {clips / batched:.2f} | "
              f"{single / batched:.2f} |")
    print(f"\nw2v-BERT 2.0 (17 layers, real size, random weights), one 8 s clip: "
          f"{w2v_bert_per_clip():.2f} s")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
