"""A build killed with SIGKILL (driver and Ray together, or one ASR worker) and run again
ends with the same bytes as an uninterrupted build."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from processes import kill_everything, markers, wait_for, workers_named
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


def test_sigkill_of_workers_and_driver_then_rerun_gives_identical_shards(tmp_path):
    reference = tmp_path / "uninterrupted"
    run_build(BuildConfig(source="demo", out_dir=reference, demo_minutes=1.6, seed=21,
                          shard_max_clips=2, asr_workers=2, progress=False))

    out = tmp_path / "killed"
    first = _start(out)  # kill one ASR worker mid-run, then the driver and all of Ray
    wait_for(lambda: bool(workers_named("AsrWorker", first.pid)), first)
    wait_for(lambda: markers(out / ".build", "recordings") >= 1, first)
    workers_named("AsrWorker", first.pid)[0].send_signal(signal.SIGKILL)
    wait_for(lambda: markers(out / ".build", "recordings") >= 3, first)
    kill_everything(first)

    second = _start(out)  # kill again while shards are being written
    wait_for(lambda: markers(out / ".build", "shards") >= 1, second)
    kill_everything(second)

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
