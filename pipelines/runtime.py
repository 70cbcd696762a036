"""Ray start-up and the small helpers every pipeline shares: markers and progress bars."""

from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

log = logging.getLogger(__name__)


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join a cluster at `address`, or start a local Ray with this machine's CPUs."""
    import ray

    if ray.is_initialized():
        return
    quiet = {"include_dashboard": False, "logging_level": logging.WARNING,
             "log_to_driver": False, "configure_logging": True}
    if address:
        ray.init(address=address, **quiet)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count(), **quiet)
    log.info("ray: %s CPUs, %s GPUs", ray.cluster_resources().get("CPU", 0),
             ray.cluster_resources().get("GPU", 0))


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON under a temporary name and rename it into place (a completion marker)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


@contextmanager
def stage_progress(enabled: bool = True):
    """A rich progress display for the stages of a run (one bar per stage)."""
    progress = Progress(
        TextColumn("[bold]{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[hours]:>8.3f} h audio"), TimeElapsedColumn(),
        TimeRemainingColumn(), disable=not enabled,
    )
    with progress:
        yield progress
