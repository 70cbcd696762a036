"""extract-features with the offline backends on a demo dataset, through Ray."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from processes import kill_everything, markers, wait_for
from unitaf_data.extract import check_features, fit_units, length_batches
from unitaf_data.features import ClipInput
from unitaf_data.features.offline import WhisperEncoder
from unitaf_data.features.units import load_centroids
from unitaf_data.shards import raw_samples, read_tar
from unitaf_pipelines.extract import ExtractConfig, run_extract

pytest.importorskip("espeakng_loader")
pytestmark = pytest.mark.e2e
SETS = ("whisper", "units", "utterance")


@pytest.fixture(scope="module")
def extracted(demo_build, tmp_path_factory):
    """A copy of the demo dataset with fitted units and the three offline feature sets."""
    config, _ = demo_build
    dataset = tmp_path_factory.mktemp("extract") / "dataset"
    shutil.copytree(config.out_dir, dataset)
    fit_units(dataset, k=32, seed=0)
    summary = run_extract(ExtractConfig(dataset_dir=dataset, feature_sets=SETS,
                                        progress=False))
    return dataset, summary


def test_fit_units_is_reproducible_by_seed(extracted, tmp_path):
    dataset, _ = extracted
    first = load_centroids(dataset)
    fit_units(dataset, k=32, seed=0)
    np.testing.assert_array_equal(load_centroids(dataset), first)
    assert first.shape == (32, 384)
    with pytest.raises(ValueError, match="cannot make"):
        fit_units(dataset, k=10**6, seed=0)
    fit_units(dataset, k=32, seed=0)  # leave the fitted units as they were


def test_sidecars_have_the_main_keys_in_order_and_pass_the_checks(extracted):
    dataset, summary = extracted
    for main in sorted(dataset.glob("data/*/*.tar")):
        samples = list(read_tar(main))
        for name in SETS:
            sidecar = dataset / "features" / name / main.parent.name / main.name
            assert [s["__key__"] for s in _raw(sidecar)] == [s["__key__"] for s in samples]
    for name in SETS:
        info = json.loads((dataset / "features" / name / "feature.json").read_text())
        checks = info["checks"]
        assert checks["problems"] == 0 and checks["frames_within_one_of_duration"]
        assert checks["all_finite"] and checks["dims_as_declared"]
        assert info["model"]["files"]["model.bin"]  # sha256 of the model files
        assert summary.feature_sets[name]["checks"]["clips"] == checks["clips"] > 0


def _raw(path):
    return list(raw_samples(path))


def test_features_have_declared_types_and_50hz_lengths(extracted):
    dataset, _ = extracted
    main = sorted(dataset.glob("data/train/*.tar"))[0]
    clips = {s["__key__"]: s for s in read_tar(main)}
    centroids = load_centroids(dataset)
    for name, field, dtype in (("whisper", "teacher.npy", np.float16),
                               ("units", "units.npy", np.int16),
                               ("utterance", "utterance.npy", np.float16)):
        for sample in _raw(dataset / "features" / name / "train" / main.name):
            array = np.load(io.BytesIO(sample[field]))
            assert array.dtype == dtype
            duration = clips[sample["__key__"]]["json"]["duration"]
            if name != "utterance":
                assert abs(len(array) - duration * 50) <= 1
            if name == "units":
                assert array.min() >= 0 and array.max() < len(centroids)


def test_teacher_features_equal_a_clip_encoded_alone(extracted):
    from unitaf_data.audio import decode_flac

    dataset, _ = extracted
    main = sorted(dataset.glob("data/train/*.tar"))[0]
    sample = next(read_tar(main))
    audio, _ = decode_flac(sample["flac"])
    alone = WhisperEncoder().encode([audio.astype(np.float32)])[0].astype(np.float16)
    sidecar = dataset / "features" / "whisper" / "train" / main.name
    stored = np.load(io.BytesIO(_raw(sidecar)[0]["teacher.npy"]))
    np.testing.assert_array_equal(stored, alone)


def test_feature_sets_load_with_datasets(extracted):
    from datasets import load_dataset

    dataset, _ = extracted
    main = load_dataset(str(dataset), split="train")
    for name in SETS:
        side = load_dataset(str(dataset), name, split="train")
        assert side["__key__"] == main["__key__"]
    teacher = np.asarray(load_dataset(str(dataset), "whisper", split="train")[0]["teacher.npy"])
    assert teacher.shape[1] == 384


def test_killed_extraction_resumes_to_identical_sidecars(extracted, tmp_path):
    dataset, _ = extracted
    copy = tmp_path / "dataset"
    shutil.copytree(dataset, copy, ignore=shutil.ignore_patterns("features"))
    shutil.copytree(dataset / "features" / "units", copy / "features" / "units",
                    ignore=shutil.ignore_patterns("train", "val", "test", "feature.json"))
    command = [sys.executable, "-c", "from unitaf_cli.data_app import app; app()",
               "extract-features", str(copy), "--workers", "1"]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: markers(copy / "features" / ".build", "offline") >= 1, first)
    kill_everything(first)
    assert subprocess.run(command, capture_output=True, timeout=600).returncode == 0
    for path in sorted(dataset.glob("features/*/*/*.tar")):
        assert (copy / path.relative_to(dataset)).read_bytes() == path.read_bytes(), path


def test_batches_group_similar_lengths_and_keep_every_clip():
    clips = [ClipInput(f"k{i}", np.zeros(n, np.float32), "", n / 16000)
             for i, n in enumerate([32000, 32000, 48000, 32010, 16000])]
    exact = length_batches(clips, batch_seconds=10, same_length=True)
    assert sorted(i for b in exact for i in b) == list(range(5))
    assert sorted(map(sorted, exact)) == [[0, 1, 3], [2], [4]]  # 32000, 32010: 100 frames
    padded = length_batches(clips, batch_seconds=5, same_length=False)
    assert all(len(b) * max(len(clips[i].audio) for i in b) / 16000 <= 5 for b in padded)


def test_feature_checks_report_length_nan_and_shape_problems():
    declared = {"fields": {"teacher.npy": {"dtype": "float16", "shape": ["T", 4]}}}
    good = {"teacher.npy": np.zeros((100, 4), np.float16)}
    assert check_features("k", 2.0, good, declared) == []
    bad = {"teacher.npy": np.full((90, 3), np.nan, np.float16)}
    problems = " ".join(check_features("k", 2.0, bad, declared))
    assert "NaN" in problems and "frames" in problems and "shape" in problems


def test_actors_are_no_more_than_the_cluster_memory_holds(extracted):
    import ray

    from unitaf_pipelines.runtime import actor_options

    memory = ray.cluster_resources()["memory"]
    count, options = actor_options("cpu", None, memory_per_worker=int(memory / 1.5))
    assert count == 1 and options["memory"] == int(memory / 1.5)
    count, options = actor_options("cpu", None, memory_per_worker=int(memory * 2))
    assert count >= 1 and "memory" not in options  # not even one fits: do not hang
    count, options = actor_options("cpu", 2, memory_per_worker=int(memory / 1.5))
    assert count == 2 and "memory" not in options
