import numpy as np

from unitaf_data.dataset import ShardRef, keys_digest
from unitaf_data.reader import tar_samples
from unitaf_data.shards import PlannedClip, json_bytes, npy_bytes, plan_shards, write_tar


def test_shard_plan_respects_clip_and_size_limits_per_split():
    clips = [PlannedClip(f"k{i:02d}", "train" if i < 7 else "val", 4e5) for i in range(10)]
    plans = plan_shards(clips, size_mb=1.0, max_clips=3)
    assert [(p.ref.split, p.ref.index, len(p.keys)) for p in plans] == [
        ("train", 0, 2), ("train", 1, 2), ("train", 2, 2), ("train", 3, 1), ("val", 0, 2),
        ("val", 1, 1)]
    assert plans[0].ref == ShardRef("train", 0) and plans[0].ref.id == "train/train-000000"


def test_tar_writing_is_byte_identical_records_itself_and_reads_back(tmp_path):
    samples = [{"__key__": f"demo-s-r-{i:04d}", "face.npy": npy_bytes(np.full((3, 2), i,
                                                                              np.float32)),
                "flac": b"fLaC" + bytes([i]),
                "json": json_bytes({"key": f"demo-s-r-{i:04d}", "i": i})} for i in range(3)]
    first = write_tar(tmp_path / "a.tar", samples)
    again = write_tar(tmp_path / "b.tar", samples)
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    assert first == again and first.samples == 3
    assert first.bytes == (tmp_path / "a.tar").stat().st_size
    assert first.keys_sha256 == keys_digest(s["__key__"] for s in samples)
    back = list(tar_samples(tmp_path / "a.tar", "a", {"face.npy", "flac", "json"}, first))
    assert [key for key, _ in back] == [s["__key__"] for s in samples]
    assert back[2][1]["flac"] == samples[2]["flac"]
    assert not list(tmp_path.glob("*.tmp"))
