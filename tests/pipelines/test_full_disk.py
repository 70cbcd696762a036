"""A full disk under `extract-features` and `train`: a small tmpfs (mounted as root; the
tests skip, saying so, where mounting is not permitted) filled to a few pages short of its
size. The command stops with a one-line error naming ENOSPC ("No space left on device")
and the file it was writing, exit code 2; nothing half-written is trusted: once space is
freed, the same command completes and its result equals a run that never ran out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from unitaf_data.testing import write_dummy_dataset

pytestmark = pytest.mark.e2e
CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TRAIN = ["steps=4", "val_every=2", "checkpoint_every=2", "warmup_steps=2", "batch_size=2",
         "shuffle_buffer=4", "log_every=1"]
DATA_APP = "from unitaf_cli.data_app import app; app()"
MAIN_APP = "from unitaf_cli.main_app import app; app()"


@pytest.fixture
def tmpfs(tmp_path):
    """A 64 MiB tmpfs at tmp_path/disk, unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here (needs root): {done.stderr}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path, leave: int) -> Path:
    """A filler file leaving `leave` bytes free on `disk`."""
    filler = disk / f"filler-{uuid.uuid4().hex}"
    stat = os.statvfs(disk)
    with open(filler, "wb") as out:
        out.truncate(0)
        remaining = stat.f_bavail * stat.f_frsize - leave
        block = b"\0" * (1 << 20)
        while remaining > 0:
            remaining -= out.write(block[: min(len(block), remaining)])
    return filler


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True,
                          timeout=600)


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.glob("**/*")) if p.is_file()}


def _check_error(done: subprocess.CompletedProcess, disk: Path) -> str:
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-3000:]
    assert "No space left on device" in output, output[-3000:]
    assert str(disk) in output, output[-3000:]  # the file being written is named
    assert "Traceback" not in output, output[-3000:]
    return output


@pytest.mark.parametrize("leave", [0, 8192, 65536])
def test_extract_features_on_a_full_disk_fails_clearly_and_reruns_to_the_same_sidecars(
        tmpfs, tmp_path, leave):
    reference = write_dummy_dataset(tmp_path / "reference", {"train": 6, "val": 2, "test": 2})
    dataset = tmpfs / "dataset"
    shutil.copytree(reference, dataset)
    args = ["extract-features", "--features", "utterance", "--workers", "1"]
    assert _run(DATA_APP, args[0], str(reference), *args[1:]).returncode == 0
    filler = _fill(tmpfs, leave)
    print(_check_error(_run(DATA_APP, args[0], str(dataset), *args[1:]), tmpfs)[-300:])
    filler.unlink()
    done = _run(DATA_APP, args[0], str(dataset), *args[1:])
    assert done.returncode == 0, done.stderr[-3000:]
    assert not list(dataset.glob("**/*.tmp"))
    for relative, data in _tree(reference).items():
        if relative.startswith("features/utterance/") or relative == "README.md":
            assert (dataset / relative).read_bytes() == data, relative


@pytest.mark.parametrize("leave", [0, 65536])
def test_train_on_a_full_disk_fails_clearly_and_reruns_to_the_same_weights(tmpfs, tmp_path,
                                                                           leave):
    dataset = write_dummy_dataset(tmp_path / "dataset")
    reference = tmp_path / "reference"
    train = ["train", "--data", str(dataset), "--config", str(CONFIGS / "demo_stage1.yaml"),
             *TRAIN]
    assert _run(MAIN_APP, *train, "--out", str(reference)).returncode == 0
    filler = _fill(tmpfs, leave)
    out = tmpfs / "run"
    print(_check_error(_run(MAIN_APP, *train, "--out", str(out)), tmpfs)[-300:])
    filler.unlink()
    done = _run(MAIN_APP, *train, "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("model.safetensors", "state.json"):  # torch_rng: see test_kill.py
        assert (out / "step_000004" / name).read_bytes() == (
            reference / "step_000004" / name).read_bytes(), name


def test_build_on_a_full_disk_fails_clearly_and_reruns_to_the_same_dataset(tmpfs, tmp_path):
    """The demo corpus is synthesised outside the tmpfs (`--input`), the dataset written
    onto it with 64 KiB left."""
    pytest.importorskip("espeakng_loader")
    build = ["build", "--source", "demo", "--input", str(tmp_path / "corpus"),
             "--demo-minutes", "1", "--seed", "5", "--shard-max-clips", "2",
             "--asr-workers", "1"]
    reference = tmp_path / "reference"
    done = _run(DATA_APP, *build, "--out", str(reference))
    assert done.returncode == 0, done.stderr[-3000:]
    filler = _fill(tmpfs, 65536)
    out = tmpfs / "dataset"
    print(_check_error(_run(DATA_APP, *build, "--out", str(out)), tmpfs)[-300:])
    filler.unlink()
    done = _run(DATA_APP, *build, "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    published = {k: v for k, v in _tree(reference).items() if not k.startswith(".build/")}
    assert {k: v for k, v in _tree(out).items() if not k.startswith(".build/")} == published
