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


# Ray's notice, on every new local cluster, that it turned token authentication on
_TOKEN_NOTICE_LOGGER = "ray._private.authentication.authentication_token_setup"
_TOKEN_NOTICE = "Token authentication is enabled for this Ray cluster"


class _DropTokenNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(_TOKEN_NOTICE)


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join a cluster at `address`, or start a local Ray with this machine's CPUs.

    A local cluster keeps Ray's token authentication (Ray enables it and writes a token);
    only the notice that it did so is not printed, since this tool started the cluster
    itself and the notice would come with every run. Joining a cluster prints what Ray
    prints."""
    import ray

    if ray.is_initialized():
        return
    quiet = {"include_dashboard": False, "logging_level": logging.WARNING,
             "log_to_driver": False, "configure_logging": True}
    if address:
        ray.init(address=address, **quiet)
    else:
        notices, silence = logging.getLogger(_TOKEN_NOTICE_LOGGER), _DropTokenNotice()
        notices.addFilter(silence)
        try:
            ray.init(num_cpus=num_cpus or os.cpu_count(), **quiet)
        finally:
            notices.removeFilter(silence)
    log.info("ray: %s CPUs, %s GPUs", ray.cluster_resources().get("CPU", 0),
             ray.cluster_resources().get("GPU", 0))


def actor_options(device: str, workers: int | None, cpu_share: float = 0.5,
                  gpus_per_worker: float | None = None, memory_per_worker: int | None = None,
                  resources: dict[str, float] | None = None) -> tuple[int, dict[str, Any]]:
    """How many actors to start and their Ray options: one per CPU (or per GPU on `cuda`)
    by default, and no more than the cluster's memory holds when each needs
    `memory_per_worker` bytes (then reserved per actor, unless even one does not fit);
    leaving `cpu_share` of a CPU free for the tasks that feed them; restarted and retried
    when a worker process dies. An explicit `workers` count is taken as it is.
    `resources`: the cluster's (default: the running Ray cluster's)."""
    if resources is None:
        import ray

        resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 1), resources.get("GPU", 0)
    on_gpu = device == "cuda"
    count = workers or max(1, int(gpus if on_gpu else cpus))
    fitting = int(resources.get("memory", 0) // memory_per_worker) if memory_per_worker else 0
    if fitting and not workers:
        count = min(count, fitting)
    options: dict[str, Any] = {"num_cpus": min(1.0, max(0.1, (cpus - cpu_share) / count)),
                               "max_restarts": 3, "max_task_retries": 3}
    if on_gpu:
        options["num_gpus"] = gpus_per_worker or max(gpus, 1) / count
    if fitting and not workers:
        options["memory"] = memory_per_worker
    return count, options


def run_on_actors(actors: list, items: list, submit, on_done, per_actor: int = 2) -> None:
    """Feed `items` to `actors`, at most `per_actor` in flight each: `submit(actor, item)`
    returns the ObjectRef of the item's final result, `on_done(item, result)` takes it in
    completion order (the caller writes markers, so the order does not matter)."""
    busy = [0] * len(actors)

    def start(item: Any) -> tuple[Any, int]:
        index = busy.index(min(busy))
        busy[index] += 1
        return submit(actors[index], item), index

    def finish(item: Any, index: int, result: Any) -> None:
        busy[index] -= 1
        on_done(item, result)

    _feed(items, start, finish, len(actors) * per_actor)


def run_tasks(items: list, submit, on_done) -> None:
    """Ray tasks for all `items` at once: `submit(item)` returns the ObjectRef of the item's
    result, `on_done(item, result)` takes it in completion order."""
    _feed(items, lambda item: (submit(item), None),
          lambda item, _, result: on_done(item, result), max(len(items), 1))


def _feed(items: list, start, finish, limit: int) -> None:
    """The one loop that keeps up to `limit` items in flight: `start(item)` -> (ObjectRef,
    slot), `finish(item, slot, result)` as each completes."""
    import ray

    in_flight: dict[Any, tuple[Any, Any]] = {}
    queue = list(reversed(items))
    while queue or in_flight:
        while queue and len(in_flight) < limit:
            item = queue.pop()
            ref, slot = start(item)
            in_flight[ref] = (item, slot)
        done, _ = ray.wait(list(in_flight), num_returns=1)
        item, slot = in_flight.pop(done[0])
        finish(item, slot, ray.get(done[0]))


@contextmanager
def actor_pool(actor_class, count: int, options: dict[str, Any], *args):
    """`count` actors of `actor_class(*args)`, killed when the block ends however it ends."""
    import ray

    actors = [actor_class.options(**options).remote(*args) for _ in range(count)]
    try:
        yield actors
    finally:
        for actor in actors:
            ray.kill(actor)


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
