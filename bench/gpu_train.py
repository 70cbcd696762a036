"""Training on a GPU against the CPU: the same stage-I and stage-II recipe, seed and data on
each device, in this process (Ray Train is not needed for one device: `run_recipe` directly).

Prints, per stage and device, training clips/s over the timed steps and the wall time, the
GPU/CPU ratio, and how far the GPU's loss curve (bf16 autocast) is from the CPU's (float32).
The data is the dummy dataset of `unitaf_data.testing` (real writers, noise audio, a face
that follows loudness, offline-style feature sets), large enough for full batches.

    python bench/gpu_train.py --clips 96 --steps 60 --batch 16
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from unitaf_data.testing import write_dummy_dataset
from unitaf_model.training.config import load_config
from unitaf_model.training.recipe import run_recipe

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def train_stage(stage: int, data: Path, out: Path, init: Path | None, steps: int, batch: int,
                gpu: bool) -> tuple[list[float], float]:
    overrides = [f"steps={steps}", f"batch_size={batch}", f"val_every={steps}",
                 f"checkpoint_every={steps}", "warmup_steps=5", f"use_gpu={str(gpu).lower()}",
                 "log_every=1000"]
    config = load_config(CONFIGS / f"demo_stage{stage}.yaml", overrides, data=str(data),
                         out=str(out), init=None if init is None else str(init))
    start = time.perf_counter()
    history = run_recipe(config)
    return [row["loss"] for row in history], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=96, help="training clips")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per clip")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    devices = [False] + ([True] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}; CUDA: "
          f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}; "
          f"CPU threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = write_dummy_dataset(work / "data", {"train": args.clips, "val": 4, "test": 4},
                                   seconds=args.seconds)
        results: dict[tuple[int, bool], tuple[list[float], float]] = {}
        for gpu in devices:
            name = "cuda" if gpu else "cpu"
            stage1 = work / f"{name}-stage1"
            results[1, gpu] = train_stage(1, data, stage1, None, args.steps, args.batch, gpu)
            results[2, gpu] = train_stage(2, data, work / f"{name}-stage2", stage1, args.steps,
                                          args.batch, gpu)
        clips = args.steps * args.batch
        for stage in (1, 2):
            for gpu in devices:
                losses, seconds = results[stage, gpu]
                print(f"stage {stage} {'cuda' if gpu else 'cpu '}: {seconds:7.2f} s, "
                      f"{clips / seconds:8.1f} clips/s, loss {losses[0]:.4f} -> {losses[-1]:.4f}")
            if True in devices:
                cpu, gpu_losses = np.array(results[stage, False][0]), np.array(
                    results[stage, True][0])
                print(f"stage {stage} GPU/CPU speed ratio "
                      f"{results[stage, False][1] / results[stage, True][1]:.2f}x; "
                      f"loss curves: max relative difference "
                      f"{np.max(np.abs(gpu_losses - cpu) / np.abs(cpu)):.3f} "
                      f"(bf16 autocast on the GPU, float32 on the CPU)")


if __name__ == "__main__":
    main()
