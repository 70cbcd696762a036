"""`unitaf-data verify`: a clean dataset passes with its counts; a flipped byte in a shard, a
truncated sidecar, a sidecar with a key out of lockstep and a wrong-shape array each exit 1
naming the shard and the key; `inspect` says it has not verified."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from unitaf_cli.data_app import app
from unitaf_data.dataset import DatasetLayout, ShardRef
from unitaf_data.shards import npy_bytes, write_tar
from unitaf_data.testing import write_dummy_dataset

runner = CliRunner()
SIDECAR = "features/whisper/train/train-000000"


@pytest.fixture(scope="module")
def dummy(tmp_path_factory) -> Path:
    return write_dummy_dataset(tmp_path_factory.mktemp("verify") / "dataset")


@pytest.fixture
def copy(dummy, tmp_path) -> Path:
    shutil.copytree(dummy, tmp_path / "dataset")
    return tmp_path / "dataset"


def _verify(dataset: Path, *extra: str):
    return runner.invoke(app, ["verify", str(dataset), *extra], env={"COLUMNS": "300"})


def _rewrite_sidecar(dataset: Path, change) -> None:
    """Rewrite the whisper sidecar of train-000000 with `change(samples)` applied, and its
    file record (size, sha256) to match, as someone who edits a shard and its record would;
    the key digest stays the main shard's."""
    path = dataset / f"{SIDECAR}.tar"
    samples: dict[str, dict[str, bytes]] = {}
    with tarfile.open(path) as archive:
        for member in archive.getmembers():
            key, _, name = member.name.partition(".")
            samples.setdefault(key, {"__key__": key})[name] = archive.extractfile(member).read()
    record = write_tar(path, change(list(samples.values())))
    info_path = DatasetLayout(dataset).feature_info("whisper")
    info = json.loads(info_path.read_text())
    shard = info["shards"][ShardRef("train", 0).id]
    shard.update(bytes=record.bytes, sha256=record.sha256)
    info_path.write_text(json.dumps(info))


def test_a_clean_dataset_passes_with_its_counts(dummy):
    result = _verify(dummy)
    assert result.exit_code == 0, result.output
    assert "clean: 8 clips in 3 shards and 6 sidecars (feature sets: units, whisper) match " \
           "their records" in result.output
    only_main = _verify(dummy, "--features", "none")
    assert only_main.exit_code == 0 and "0 sidecars (feature sets: none)" in only_main.output


def test_a_flipped_byte_in_a_shard_is_named(copy):
    shard = copy / "data" / "val" / "val-000000.tar"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x10
    shard.write_bytes(bytes(data))
    result = _verify(copy)
    assert result.exit_code == 1, result.output
    assert "val/val-000000" in result.output and "checksum mismatch" in result.output
    assert "damaged: " in result.output and "6 clips in 3 shards" in result.output


def test_a_truncated_sidecar_is_named(copy):
    path = copy / f"{SIDECAR}.tar"
    path.write_bytes(path.read_bytes()[:-700])
    result = _verify(copy)
    assert result.exit_code == 1, result.output
    assert SIDECAR in result.output and "size differs from the record" in result.output


def test_a_sidecar_key_out_of_lockstep_is_named_with_the_key(copy):
    keys = []

    def swap(samples):
        keys.extend(s["__key__"] for s in samples[:2])
        return [samples[1], samples[0], *samples[2:]]

    _rewrite_sidecar(copy, swap)
    result = _verify(copy, "--features", "whisper")
    assert result.exit_code == 1, result.output
    line = next(line for line in result.output.splitlines() if "out of step" in line)
    assert "train/train-000000" in line and keys[0] in line


def test_a_wrong_shape_array_is_named_with_the_key_and_field(copy):
    bad = {}

    def widen(samples):
        teacher = np.load(io.BytesIO(samples[2]["teacher.npy"]))
        samples[2]["teacher.npy"] = npy_bytes(np.zeros((len(teacher), teacher.shape[1] + 1),
                                                       teacher.dtype))
        bad["key"] = samples[2]["__key__"]
        return samples

    _rewrite_sidecar(copy, widen)
    result = _verify(copy)
    assert result.exit_code == 1, result.output
    line = next(line for line in result.output.splitlines() if "shape differs" in line)
    assert SIDECAR in line and bad["key"] in line and "teacher.npy" in line
    assert "7 clips" in result.output  # every other clip was still read


def test_inspect_says_it_has_not_verified(dummy):
    result = runner.invoke(app, ["inspect", str(dummy)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert f"not verified: run `unitaf-data verify {dummy}`" in result.output


def test_a_hub_dataset_is_verified_through_the_same_reading_api(dummy, tmp_path,
                                                                monkeypatch):
    from hub_fake import install
    from unitaf_data.hub import push_dataset

    hub = install(monkeypatch, tmp_path / "hub")
    push_dataset(dummy, "me/data", include_features=["all"])
    clean = _verify(Path("me/data"))
    assert clean.exit_code == 0 and "clean: 8 clips in 3 shards and 6 sidecars" in clean.output
    shard = bytearray((dummy / "data" / "test" / "test-000000.tar").read_bytes())
    shard[len(shard) // 2] ^= 0x10
    hub.tamper("me/data", "data/test/test-000000.tar", bytes(shard))
    damaged = _verify(Path("me/data"))
    assert damaged.exit_code == 1 and "test/test-000000" in damaged.output
    assert "checksum mismatch" in damaged.output
