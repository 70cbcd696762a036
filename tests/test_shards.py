import numpy as np

from unitaf_data.shards import json_bytes, npy_bytes, plan_shards, read_tar, write_tar


def test_shard_plan_respects_clip_and_size_limits_per_split():
    clips = [{"split": "train" if i < 7 else "val", "key": f"k{i:02d}", "estimated_bytes": 4e5}
             for i in range(10)]
    plans = plan_shards(clips, size_mb=1.0, max_clips=3)
    assert [(p.split, p.index, len(p.keys)) for p in plans] == [
        ("train", 0, 2), ("train", 1, 2), ("train", 2, 2), ("train", 3, 1), ("val", 0, 2),
        ("val", 1, 1)]
    assert plans[0].relative_path == "data/train/train-000000.tar"


def test_tar_writing_is_byte_identical_and_reads_back(tmp_path):
    samples = [{"__key__": f"demo-s-r-{i:04d}", "flac": b"fLaC" + bytes([i]),
                "face.npy": npy_bytes(np.full((3, 2), i, np.float32)),
                "json": json_bytes({"key": f"demo-s-r-{i:04d}", "i": i})} for i in range(3)]
    write_tar(tmp_path / "a.tar", samples)
    write_tar(tmp_path / "b.tar", samples)
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    back = list(read_tar(tmp_path / "a.tar"))
    assert [s["__key__"] for s in back] == [s["__key__"] for s in samples]
    assert back[2]["face.npy"].shape == (3, 2) and back[2]["json"]["i"] == 2
    assert not list(tmp_path.glob("*.tmp"))
