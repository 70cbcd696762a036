"""Ray start-up and the small helpers every pipeline shares: markers and progress bars."""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
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


DEFAULT_STALL_TIMEOUT_S = 1800.0  # no result at all for this long: the stage is stuck
# Ray's errors for a node, worker or actor that went away mid-run (`ray.exceptions`)
_LOST_PROCESS_ERRORS = ("RayActorError", "NodeDiedError", "ObjectLostError", "OwnerDiedError",
                        "WorkerCrashedError", "LocalRayletDiedError")


def lost_cluster_process(error: BaseException) -> bool:
    """Whether `error` is Ray reporting a node, worker or actor lost mid-run (directly or as
    the cause of a task's error): neither bad input nor a bug, and a rerun resumes."""
    ray_exceptions = sys.modules.get("ray.exceptions")  # not loaded: Ray never ran
    if ray_exceptions is None:
        return False
    lost = tuple(getattr(ray_exceptions, name) for name in _LOST_PROCESS_ERRORS)
    return isinstance(error, lost) or isinstance(getattr(error, "cause", None), lost)


class StageStalled(RuntimeError):
    """A stage on the cluster got no result within its timeout; says what is missing where."""


def node_label() -> str:
    """The Ray node this process runs on: its address and the start of its id."""
    import ray

    context = ray.get_runtime_context()
    node = context.get_node_id()
    address = next((n["NodeManagerAddress"] for n in ray.nodes() if n["NodeID"] == node), "?")
    return f"{address}/{node[:8]}"


def cluster_state() -> str:
    """The nodes Ray knows (alive or not, CPUs, GPUs) and the free share, for errors."""
    import ray

    nodes = [f"{n['NodeManagerAddress']}/{n['NodeID'][:8]} "
             f"{'alive' if n['Alive'] else 'DEAD'} {n['Resources'].get('CPU', 0):g} CPU"
             + (f" {n['Resources']['GPU']:g} GPU" if n["Resources"].get("GPU") else "")
             for n in ray.nodes()]
    free = ray.available_resources()
    return (f"nodes: {'; '.join(nodes)}; free now: {free.get('CPU', 0):g} CPU, "
            f"{free.get('GPU', 0):g} GPU")


def wait_one(pending: list, timeout: float, stage: str, describe) -> Any:
    """The next finished ObjectRef of `pending`; StageStalled when none finishes within
    `timeout` seconds, naming what is missing (`describe(refs)`) and the cluster's nodes."""
    import ray

    done, _ = ray.wait(pending, num_returns=1, timeout=timeout)
    if not done:
        raise StageStalled(f"{stage}: nothing finished in {timeout:g} s; still waiting for "
                           f"{describe(pending)}; {cluster_state()}")
    return done[0]


def _node_cpus(resources: dict[str, float] | None) -> list[float]:
    """CPUs of each alive node (from Ray), or one node holding all of `resources`."""
    if resources is not None:
        return [resources.get("CPU", 1)]
    import ray

    return [n["Resources"].get("CPU", 0) for n in ray.nodes()
            if n["Alive"] and n["Resources"].get("CPU", 0) > 0] or [1]


def actor_options(device: str, workers: int | None, cpu_share: float = 0.5,
                  gpus_per_worker: float | None = None, memory_per_worker: int | None = None,
                  resources: dict[str, float] | None = None) -> tuple[int, dict[str, Any]]:
    """How many actors to start and their Ray options: one per CPU (or per GPU on `cuda`)
    of the cluster by default, spread over its nodes, and no more than the cluster's
    memory holds when each needs `memory_per_worker` bytes (then reserved per actor,
    unless even one does not fit); leaving `cpu_share` of a CPU free on every node for the
    tasks that feed them (a one-CPU node too; those tasks reserve none, so an actor restarted
    onto another node cannot starve them); restarted and retried when a worker process
    dies. An explicit `workers` count is taken as it is. `resources`: one node's (default:
    the running Ray cluster's nodes)."""
    per_node = _node_cpus(resources)
    if resources is None:
        import ray

        resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 1), resources.get("GPU", 0)
    on_gpu = device == "cuda"
    count = workers or max(1, int(gpus if on_gpu else cpus))
    fitting = int(resources.get("memory", 0) // memory_per_worker) if memory_per_worker else 0
    if fitting and not workers:
        count = min(count, fitting)
    share = min(max(0.1, (node - cpu_share) / max(1, node)) for node in per_node)
    options: dict[str, Any] = {"num_cpus": min(1.0, share, max(0.1, (cpus - cpu_share) / count)),
                               "max_restarts": 3, "max_task_retries": 3,
                               "scheduling_strategy": "SPREAD"}
    if on_gpu:
        options["num_gpus"] = gpus_per_worker or max(gpus, 1) / count
    if fitting and not workers:
        options["memory"] = memory_per_worker
    return count, options


def run_on_actors(actors: list, items: list, submit, on_done, per_actor: int = 2,
                  timeout: float = DEFAULT_STALL_TIMEOUT_S, stage: str = "stage",
                  name=str, where: list[str] | None = None) -> None:
    """Feed `items` to `actors`, at most `per_actor` in flight each: `submit(actor, item)`
    returns the ObjectRef of the item's final result, `on_done(item, result)` takes it in
    completion order (the caller writes markers, so the order does not matter). No result
    for `timeout` seconds raises StageStalled naming the items (`name(item)`) and the
    nodes of their actors (`where`)."""
    busy = [0] * len(actors)

    def start(item: Any) -> tuple[Any, int]:
        index = busy.index(min(busy))
        busy[index] += 1
        return submit(actors[index], item), index

    def finish(item: Any, index: int, result: Any) -> None:
        busy[index] -= 1
        on_done(item, result)

    def describe(item: Any, index: int) -> str:
        return f"{name(item)} (actor {index}" + (f" on {where[index]}" if where else "") + ")"

    _feed(items, start, finish, len(actors) * per_actor, timeout, stage, describe)


def run_tasks(items: list, submit, on_done, timeout: float = DEFAULT_STALL_TIMEOUT_S,
              stage: str = "stage", name=str) -> None:
    """Ray tasks for all `items` at once: `submit(item)` returns the ObjectRef of the item's
    result, `on_done(item, result)` takes it in completion order; no result for `timeout`
    seconds raises StageStalled naming the items still missing."""
    _feed(items, lambda item: (submit(item), None),
          lambda item, _, result: on_done(item, result), max(len(items), 1), timeout, stage,
          lambda item, _: name(item))


def _feed(items: list, start, finish, limit: int, timeout: float, stage: str,
          describe) -> None:
    """The one loop that keeps up to `limit` items in flight: `start(item)` -> (ObjectRef,
    slot), `finish(item, slot, result)` as each completes; every wait bounded by
    `timeout` (`describe(item, slot)` names what is missing)."""
    import ray

    in_flight: dict[Any, tuple[Any, Any]] = {}
    queue = list(reversed(items))

    def waiting(pending: list) -> str:
        entries = [in_flight[ref] for ref in pending]
        return ", ".join(describe(item, slot) for item, slot in entries[:5]) + (
            " ..." if len(entries) > 5 else "")

    while queue or in_flight:
        while queue and len(in_flight) < limit:
            item = queue.pop()
            ref, slot = start(item)
            in_flight[ref] = (item, slot)
        done = wait_one(list(in_flight), timeout, stage, waiting)
        item, slot = in_flight.pop(done)
        finish(item, slot, ray.get(done))


def actor_nodes(actors: list, timeout: float) -> list[str]:
    """Where each actor of a pool runs (its `where()` method), or why it is not running:
    an actor no node can place stays pending, and that is named here, not waited on."""
    import ray

    calls = [actor.where.remote() for actor in actors]
    ready, _ = ray.wait(calls, num_returns=len(calls), timeout=timeout)
    return [ray.get(call) if call in ready else "not started (no node could place it)"
            for call in calls]


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
