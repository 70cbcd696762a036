"""A build killed with SIGKILL (driver and Ray together, or one ASR worker) and run again
ends with the same bytes as an uninterrupted build."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from unitaf_pipelines.build import BuildConfig, run_build

pytest.importorskip("espeakng_loader")
pytestmark = pytest.mark.e2e
SETTINGS = ["--demo-minutes", "1.6", "--seed", "21", "--shard-max-clips", "2",
            "--asr-workers", "2"]
BUILD = "from unitaf_cli.data_app import app; app()"


def _start(out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", BUILD, "build", "--out", str(out), *SETTINGS],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _wait_for(condition, process: subprocess.Popen, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, "the build ended before it could be killed"
        assert time.monotonic() < deadline, "timed out waiting for the build"
        time.sleep(0.1)


def _kill_everything(process: subprocess.Popen) -> None:
    """SIGKILL the driver and every process it started (Ray's own and its workers)."""
    assert process.poll() is None, "the build finished before it could be killed"
    family = [*psutil.Process(process.pid).children(recursive=True)]
    for member in [psutil.Process(process.pid), *family]:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.send_signal(signal.SIGKILL)
    process.wait()
    psutil.wait_procs(family, timeout=30)


def _asr_workers(driver: int) -> list[psutil.Process]:
    try:
        family = psutil.Process(driver).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for proc in family:
        try:
            if "AsrWorker" in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _markers(out: Path, kind: str) -> int:
    folder = out / ".build" / kind
    return len(list(folder.glob("*.json"))) if folder.exists() else 0


def test_sigkill_of_workers_and_driver_then_rerun_gives_identical_shards(tmp_path):
    reference = tmp_path / "uninterrupted"
    run_build(BuildConfig(source="demo", out_dir=reference, demo_minutes=1.6, seed=21,
                          shard_max_clips=2, asr_workers=2, progress=False))

    out = tmp_path / "killed"
    first = _start(out)  # kill one ASR worker mid-run, then the driver and all of Ray
    _wait_for(lambda: bool(_asr_workers(first.pid)), first)
    _wait_for(lambda: _markers(out, "recordings") >= 1, first)
    _asr_workers(first.pid)[0].send_signal(signal.SIGKILL)
    _wait_for(lambda: _markers(out, "recordings") >= 3, first)
    _kill_everything(first)

    second = _start(out)  # kill again while shards are being written
    _wait_for(lambda: _markers(out, "shards") >= 1, second)
    _kill_everything(second)

    third = subprocess.run([sys.executable, "-c", BUILD, "build", "--out", str(out), *SETTINGS],
                           capture_output=True, text=True, timeout=600)
    assert third.returncode == 0, third.stdout + third.stderr

    expected = sorted(p.relative_to(reference) for p in reference.glob("data/*/*.tar"))
    assert sorted(p.relative_to(out) for p in out.glob("data/*/*.tar")) == expected
    for path in expected:
        assert (out / path).read_bytes() == (reference / path).read_bytes(), path
    keys = pq.read_table(out / "manifest.parquet").column("key").to_pylist()
    assert len(keys) == len(set(keys))
    assert keys == pq.read_table(reference / "manifest.parquet").column("key").to_pylist()
    assert not list(out.rglob("*.tmp"))
