"""A Ray cluster of two nodes on this machine whose second node shares no disk with the
driver: it runs in its own mount namespace with private tmpfs mounts over its Ray folder and
over the tests' work folder (`unshare --mount`, as root). Every process is started in its own
session (`setsid`) and stopped by killing its process group and its descendants
by pid: never `ray stop`, which would
stop every Ray process on the machine. Token authentication is off for this test cluster
(`RAY_AUTH_MODE=disabled` in every process of it)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from object_store import free_port

ROOT = Path(__file__).resolve().parents[1]
NODE_WAIT_S = 90


def unshare_reason() -> str | None:
    """Why a node in its own mount namespace cannot be started here (None when it can)."""
    if shutil.which("unshare") is None or shutil.which("ray") is None:
        return "needs the unshare and ray commands"
    if os.geteuid() != 0:
        return "needs root for unshare --mount and tmpfs mounts"
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                           capture_output=True, timeout=30)
    if probe.returncode != 0:
        return f"unshare --mount is not permitted here ({probe.stderr.decode()[:200]})"
    return None


@dataclass
class Cluster:
    address: str
    env: dict[str, str]  # what a driver needs (Ray's, the storage's)
    hidden: Path  # the folder the second node cannot see
    head_dir: Path  # the head's Ray folder (its session logs, the workers' output)
    groups: dict[str, int] = field(default_factory=dict)  # node → process group id

    def kill_node(self, name: str) -> None:
        """SIGKILL the node's group and, by pid, what it started in sessions of its own
        (Ray's gcs_server and raylet)."""
        leader = self.groups.pop(name)
        try:
            family = psutil.Process(leader).children(recursive=True)
        except psutil.NoSuchProcess:
            family = []
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader, signal.SIGKILL)
        for member in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.send_signal(signal.SIGKILL)


def _ports() -> list[str]:
    return ["--node-manager-port", str(free_port()), "--object-manager-port",
            str(free_port()), "--dashboard-agent-listen-port", str(free_port()),
            "--dashboard-agent-grpc-port", str(free_port()), "--runtime-env-agent-port",
            str(free_port()), "--metrics-export-port", str(free_port())]


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as sink:
        return subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _wait_for_nodes(address: str, env: dict[str, str], count: int, logs: list[Path]) -> None:
    script = ("import ray, time, sys\n"
              f"ray.init(address={address!r}, logging_level='ERROR')\n"
              f"deadline = time.monotonic() + {NODE_WAIT_S}\n"
              f"while sum(n['Alive'] for n in ray.nodes()) < {count}:\n"
              "    if time.monotonic() > deadline: sys.exit(3)\n"
              "    time.sleep(0.5)\n")
    try:
        result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                                timeout=NODE_WAIT_S + 60)
    except subprocess.TimeoutExpired:
        result = None
    if result is None or result.returncode != 0:
        tails = "\n".join(f"--- {log}:\n{log.read_text(errors='replace')[-1500:]}"
                          for log in logs if log.exists())
        raise RuntimeError(f"the test cluster at {address} did not reach {count} alive nodes "
                           f"within {NODE_WAIT_S} s\n{tails}")


@contextlib.contextmanager
def two_node_cluster(hidden: Path, extra_env: dict[str, str]) -> Iterator[Cluster]:
    """Head (1 CPU) and a second node (1 CPU) that sees neither `hidden` nor the head's Ray
    folder; `extra_env` (the storage's endpoint and credentials) goes to every process."""
    port = free_port()
    env = {**os.environ, **extra_env, "RAY_AUTH_MODE": "disabled",
           "PYTHONPATH": os.pathsep.join([str(ROOT / ".shim"), str(ROOT), str(ROOT / "tests")])}
    head_dir = Path(tempfile.mkdtemp(prefix="uh-"))  # short: Ray's socket paths are capped
    private = Path(tempfile.mkdtemp(prefix="un-"))
    logs = [head_dir / "head.log", private.with_name(private.name + ".log")]
    cluster = Cluster(f"127.0.0.1:{port}", env, hidden, head_dir)
    processes = []
    try:
        processes.append(_start(
            ["ray", "start", "--head", f"--port={port}", "--num-cpus=1", "--num-gpus=0",
             "--include-dashboard=false", f"--temp-dir={head_dir / 'ray'}",
             f"--ray-client-server-port={free_port()}", *_ports(), "--block"], env, logs[0]))
        cluster.groups["head"] = processes[-1].pid
        _wait_for_nodes(cluster.address, env, 1, logs)
        node = (f"mount -t tmpfs tmpfs {private} && mount -t tmpfs tmpfs {hidden} && exec ray "
                f"start --address={cluster.address} --num-cpus=1 --num-gpus=0 "
                f"--temp-dir={private}/ray {' '.join(_ports())} --block")
        processes.append(_start(["unshare", "--mount", "--propagation", "private", "bash",
                                 "-c", node], env, logs[1]))
        cluster.groups["second"] = processes[-1].pid
        _wait_for_nodes(cluster.address, env, 2, logs)
        yield cluster
    finally:
        for name in list(cluster.groups):
            cluster.kill_node(name)
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
        time.sleep(1)  # the killed raylets' children leave with their group
        shutil.rmtree(head_dir, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)
        logs[1].unlink(missing_ok=True)
