"""Running the recipe: in this process, or data-parallel on Ray Train's TorchTrainer
(`num_workers > 1` or `use_gpu`; gloo on CPU workers, NCCL on GPUs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unitaf_model.config import TrainConfig
from unitaf_model.train import run_recipe


def _worker(config: dict[str, Any]) -> None:
    import ray.train

    context = ray.train.get_context()
    run_recipe(TrainConfig(**config), context.get_world_rank(), context.get_world_size())


def train(config: TrainConfig, ray_address: str | None = None) -> list[dict[str, float]]:
    """Train one stage; returns the per-step loss history (of this process's run)."""
    if config.num_workers <= 1 and not config.use_gpu:
        return run_recipe(config)
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from unitaf_pipelines.runtime import init_ray

    init_ray(ray_address)
    out = Path(config.out).resolve()
    trainer = TorchTrainer(
        _worker, train_loop_config={**config.to_dict(), "out": str(out),
                                    "data": _absolute(config.data)},
        scaling_config=ScalingConfig(num_workers=config.num_workers, use_gpu=config.use_gpu),
        run_config=RunConfig(name="unitaf", storage_path=str(out / "ray")))
    trainer.fit()
    from unitaf_model.run import latest_checkpoint, load_training_state

    return load_training_state(latest_checkpoint(out)).history


def _absolute(data: str) -> str:
    """A local dataset as an absolute path (workers may start elsewhere); a Hub id as is."""
    return str(Path(data).resolve()) if Path(data).exists() else data
