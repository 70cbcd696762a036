"""Feature extraction: one clip at a time (as the reference training code computes features
inside its data loader) against the batched `extract-features` pipeline, on the same clips.

Backends: `whisper` (the offline Whisper tiny.en encoder), `unitalker` (a UniTalker-B-size
WavLM-base-plus audio encoder with random weights, saved in UniTalker's checkpoint layout and
loaded by the real loader) and `indextts2` (all four IndexTTS2 sets from random-weight models of
the upstream classes in the released file formats; `--indextts2-size tiny` on CPU by default,
`real` on a GPU). Then the per-clip cost of the full IndexTTS2 stack at its real sizes (w2v-BERT
2.0 to layer 17, MaskGCT semantic codec, the 24-layer GPT's conditioning and teacher-forced pass,
`gpt_layer`) on one 8 s clip. With a GPU, both sides of the comparison run on it.

    python bench/extract_throughput.py --minutes 3
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from indextts2_models import write_random_indextts2  # noqa: E402
from unitaf_data.features.indextts2 import INDEXTTS2_SETS  # noqa: E402

SETS = {"offline": ("whisper",), "unitalker": ("unitalker",), "indextts2": INDEXTTS2_SETS}


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


def one_at_a_time(dataset: Path, backend: str, models: dict[str, str], device: str
                  ) -> tuple[int, float]:
    """(clips, seconds): load the models once (timed), then one clip per forward pass."""
    from unitaf_data.dataset import Dataset
    from unitaf_data.extract import clip_inputs
    from unitaf_data.features import ExtractSettings, make_backend

    opened = Dataset.open_folder(dataset)
    clips = [c for shard in opened.shards() for c in clip_inputs(opened, shard)]
    start = time.perf_counter()
    model = make_backend(backend, list(SETS[backend]),
                         ExtractSettings(dataset_dir=dataset, device=device, **models))
    for clip in clips:
        model.extract([clip])
    return len(clips), time.perf_counter() - start


def pipeline(dataset: Path, backend: str, models: dict[str, str], gpus: float) -> float:
    """Seconds of `extract-features` on Ray (actor start, model loads, shard reading and
    writing included; Ray itself is already running)."""
    from unitaf_pipelines.extract import ExtractConfig, run_extract

    shutil.rmtree(dataset / "features", ignore_errors=True)
    start = time.perf_counter()
    run_extract(ExtractConfig(dataset_dir=dataset, feature_sets=SETS[backend],
                              gpus_per_worker=gpus, progress=False, **models))
    return time.perf_counter() - start


def indextts2_stack_per_clip(work: Path, device: str, seconds: float = 8.0,
                             repeats: int = 2) -> tuple[float, float]:
    """(seconds per clip for all four sets, of which w2v-BERT) at IndexTTS2's real sizes."""
    from unitaf_data.features import ClipInput, ExtractSettings, make_backend

    models = write_random_indextts2(work / "indextts2-real", size="real")
    backend = make_backend("indextts2", list(INDEXTTS2_SETS), ExtractSettings(
        dataset_dir=work, device=device, **{k: str(v) for k, v in models.items()}))
    audio = np.random.default_rng(0).normal(scale=0.1, size=int(16000 * seconds))
    clip = ClipInput("clip", audio.astype(np.float32),
                     "The quick brown fox jumps over the lazy dog near the river bank today.",
                     seconds)
    backend.extract([clip])  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        backend.extract([clip])
    total = (time.perf_counter() - start) / repeats
    with torch.inference_mode():
        start = time.perf_counter()
        for _ in range(repeats):
            backend.semantic([clip.audio])
    shutil.rmtree(work / "indextts2-real", ignore_errors=True)
    return total, (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--indextts2-size", choices=("tiny", "real"), default=None,
                        help="random IndexTTS2 models for the comparison (default: tiny on "
                             "CPU, real on a GPU)")
    args = parser.parse_args()
    gpu = torch.cuda.is_available()
    device, gpus = ("cuda", 1.0) if gpu else ("cpu", 0.0)
    work = Path(tempfile.mkdtemp(prefix="unitaf-extract-bench-"))
    dataset = demo_dataset(work, args.minutes)
    size = args.indextts2_size or ("real" if gpu else "tiny")
    indextts2 = write_random_indextts2(work / f"indextts2-{size}", size=size)
    models = {"offline": {},
              "unitalker": {"unitalker_ckpt": str(unitalker_b_checkpoint(work / "b.pt"))},
              "indextts2": {k: str(v) for k, v in indextts2.items()}}
    print(f"device: {device}, {torch.get_num_threads()} torch threads; "
          f"indextts2 models: {size}\n")
    print("| backend | clips | one at a time (clips/s) | extract-features (clips/s) | ratio |")
    print("|---|---|---|---|---|")
    for backend in ("offline", "unitalker", "indextts2"):
        clips, single = one_at_a_time(dataset, backend, models[backend], device)
        batched = pipeline(dataset, backend, models[backend], gpus)
        print(f"| {','.join(SETS[backend])} | {clips} | {clips / single:.2f} | "
              f"{clips / batched:.2f} | {single / batched:.2f} |")
    total, semantic = indextts2_stack_per_clip(work, device)
    print(f"\nIndexTTS2 stack at real sizes (random weights), one 8 s clip on {device}: "
          f"{total:.2f} s for all four sets, of which w2v-BERT 2.0 to layer 17 {semantic:.2f} s")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
