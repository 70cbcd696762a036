"""Running the recipe: in this process, or data-parallel on Ray Train's TorchTrainer
(`num_workers > 1` or `use_gpu`; gloo on CPU workers, NCCL on GPUs); and what a run folder
holds before training into it (nothing, a run to resume, a finished run, or something else)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from unitaf_data import owned
from unitaf_data.dataset import read_json_file
from unitaf_model.run import latest_checkpoint, load_training_state, recover_run
from unitaf_model.training.config import TrainConfig, config_differences
from unitaf_model.training.recipe import resolved, run_recipe

log = logging.getLogger(__name__)

RunState = Literal["new", "unfinished", "finished"]
Progress = Callable[[int, dict[str, float]], None]  # (step, that step's losses)
# Keys that may differ between the runs of one config: where the run folder is.
_WHERE = ("out",)
_ADVICE = "pass a new --out, or an empty folder"


def prepare_run(config: TrainConfig, overwrite: bool = False) -> RunState:
    """What `config.out` holds, made ready to train into: nothing yet (`new`; a run that
    was begun there but never checkpointed is cleared), or a checkpointed run of this same
    config (`unfinished`: training resumes it; `finished`: nothing is left to do). A run of
    another config is refused unless `overwrite` deletes it; a folder that is not a run
    the toolkit made (`unitaf_data.owned`: no run marker, such as someone's model folder,
    or a symbolic link) is refused and left as it is, with `overwrite` too."""
    out = Path(config.out)
    if overwrite:
        owned.remove(out, "run", _ADVICE)
    owned.check_owned(out, "run", _ADVICE)
    recover_run(out)
    if not out.exists() or all(p.name == owned.MARKER for p in out.iterdir()):
        return "new"
    last = latest_checkpoint(out, required=False)
    if last is None:
        log.info("starting %s over: the run begun there wrote no checkpoint", out)
        owned.remove(out, "run", _ADVICE, keep_folder=True)
        return "new"
    differences = config_differences(read_json_file(out / "config.json"), resolved(config),
                                     ignored=_WHERE)
    if differences:
        shown = ", ".join(differences[:3]) + (f" and {len(differences) - 3} more"
                                              if len(differences) > 3 else "")
        raise ValueError(f"{out} holds a run of another config ({shown}): pass a new "
                         "--out, or --overwrite to replace it")
    return "finished" if int(last.name.removeprefix("step_")) >= config.steps else "unfinished"


def _worker(config: dict[str, Any]) -> None:
    import ray.train

    context = ray.train.get_context()
    run_recipe(TrainConfig(**config), context.get_world_rank(), context.get_world_size())


def uses_ray_train(config: TrainConfig) -> bool:
    """Whether `config` trains on Ray Train workers (the caller starts Ray first:
    `unitaf_pipelines.runtime.init_ray`)."""
    return config.num_workers > 1 or config.use_gpu


def train(config: TrainConfig, progress: Progress | None = None) -> list[dict[str, float]]:
    """Train one stage; returns the per-step loss history (of this process's run).
    `progress(step, losses)` is called after every step of a run in this process (Ray Train
    workers report through their logs). A run that fails before its first checkpoint
    removes the run folder it created. A run on Ray Train workers needs Ray started."""
    out = Path(config.out)
    created = not out.exists()
    owned.claim(out, "run", _ADVICE)  # before Ray Train writes into it
    try:
        return _train(config, progress)
    except Exception:
        if created and latest_checkpoint(out, required=False) is None:
            with contextlib.suppress(OSError):  # the run's error is the one to report
                owned.remove(out, "run")
        raise


def _train(config: TrainConfig, progress: Progress | None) -> list[dict[str, float]]:
    if not uses_ray_train(config):
        return run_recipe(config, progress=progress)
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    if not ray.is_initialized():
        raise RuntimeError(f"num_workers={config.num_workers}, use_gpu={config.use_gpu} "
                           "train on Ray Train workers: start Ray first "
                           "(unitaf_pipelines.runtime.init_ray)")
    out = Path(config.out).resolve()
    trainer = TorchTrainer(
        _worker, train_loop_config={**config.to_dict(), "out": str(out),
                                    "data": _absolute(config.data)},
        scaling_config=ScalingConfig(num_workers=config.num_workers, use_gpu=config.use_gpu),
        run_config=RunConfig(name="unitaf", storage_path=str(out / "ray")))
    trainer.fit()
    return load_training_state(latest_checkpoint(out)).history


def _absolute(data: str) -> str:
    """A local dataset as an absolute path (workers may start elsewhere); a Hub id as is."""
    return str(Path(data).resolve()) if Path(data).exists() else data
