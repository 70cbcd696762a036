"""Helpers for tests that start, watch and SIGKILL real runs."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from pathlib import Path

import psutil


def wait_for(condition, process: subprocess.Popen, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, "the build ended before it could be killed"
        assert time.monotonic() < deadline, "timed out waiting for the build"
        time.sleep(0.1)


def kill_everything(process: subprocess.Popen) -> None:
    """SIGKILL the driver and every process it started (Ray's own and its workers)."""
    assert process.poll() is None, "the build finished before it could be killed"
    family = [*psutil.Process(process.pid).children(recursive=True)]
    for member in [psutil.Process(process.pid), *family]:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.send_signal(signal.SIGKILL)
    process.wait()
    psutil.wait_procs(family, timeout=30)


def workers_named(name: str, driver: int) -> list[psutil.Process]:
    """Ray worker processes started under `driver` whose command line names `name`."""
    try:
        family = psutil.Process(driver).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for proc in family:
        try:
            if name in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def markers(work: Path, kind: str) -> int:
    folder = work / kind
    return len(list(folder.glob("*.json"))) if folder.exists() else 0
