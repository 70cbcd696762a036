"""extract-features with the offline backends on a demo dataset, through Ray: sidecars,
checks, resume keyed by feature set, settings compared on rerun."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from processes import kill_everything, markers, wait_for
from reference import DEMO_SETS, all_samples
from unitaf_data.dataset import Dataset
from unitaf_data.extract import check_features, fit_units, length_batches, refusal
from unitaf_data.features import ClipInput
from unitaf_data.features.units import load_centroids
from unitaf_data.schema import FieldSpec
from unitaf_pipelines.extract import ExtractConfig, run_extract

ALL_FIELDS = {"whisper": ["teacher.npy"], "units": ["units.npy"],
              "utterance": ["utterance.npy"]}


def test_sidecars_have_the_main_keys_in_order_and_pass_the_checks(demo_features):
    dataset = Dataset.open_folder(demo_features)
    for name in DEMO_SETS:
        info = dataset.feature_set(name)
        assert set(info.shards) == set(dataset.info.shards)
        for shard, record in info.shards.items():
            assert record.keys_sha256 == dataset.info.shards[shard].keys_sha256
        assert info.checks.problems == {"frames_off": 0, "non_finite": 0, "bad_shape": 0}
        assert info.checks.clips == dataset.info.counts["clips"] and not info.checks.refused
        assert info.model["files"]["model.bin"]  # sha256 of the model files
    dataset.check_sidecars(DEMO_SETS, dataset.splits)


def test_features_have_declared_types_and_50hz_lengths(demo_features):
    centroids = load_centroids(demo_features)
    for sample in all_samples(demo_features, ALL_FIELDS).values():
        for name, field, dtype in (("whisper", "teacher.npy", np.float16),
                                   ("units", "units.npy", np.int16),
                                   ("utterance", "utterance.npy", np.float16)):
            array = sample.features[name][field]
            assert array.dtype == dtype
            if name != "utterance":
                assert abs(len(array) - sample.meta.duration * 50) <= 1
        codes = sample.features["units"]["units.npy"]
        assert codes.min() >= 0 and codes.max() < len(centroids)


@pytest.mark.e2e
def test_teacher_features_equal_a_clip_encoded_alone_in_an_actor(demo_features):
    """Batching never changes a clip's features (the encoder runs in the same kind of Ray
    actor as extraction: its OpenMP threading sets the floating-point order)."""
    import ray

    from unitaf_data.features.offline import WhisperEncoder

    sample = next(iter(all_samples(demo_features, {"whisper": ["teacher.npy"]}).values()))

    @ray.remote(num_cpus=1)
    def encode_alone(audio):
        return WhisperEncoder().encode([audio])[0].astype(np.float16)

    alone = ray.get(encode_alone.remote(sample.audio()))
    np.testing.assert_array_equal(sample.features["whisper"]["teacher.npy"], alone)


@pytest.mark.e2e
def test_feature_sets_load_with_datasets(demo_features):
    from datasets import load_dataset

    main = load_dataset(str(demo_features), split="train")
    for name in DEMO_SETS:
        side = load_dataset(str(demo_features), name, split="train")
        assert side["__key__"] == main["__key__"]
    teacher = np.asarray(load_dataset(str(demo_features), "whisper", split="train")[0][
        "teacher.npy"])
    assert teacher.shape[1] == 384


@pytest.mark.e2e
def test_sets_extracted_one_after_another_are_each_complete(demo_build, tmp_path):
    dataset = tmp_path / "dataset"
    shutil.copytree(demo_build[0].out_dir, dataset)
    fit_units(dataset, k=16, seed=0)
    run_extract(ExtractConfig(dataset_dir=dataset, feature_sets=("whisper",), progress=False))
    run_extract(ExtractConfig(dataset_dir=dataset, feature_sets=("units",), progress=False))
    opened = Dataset.open_folder(dataset)
    assert opened.feature_set_names() == ["units", "whisper"]
    opened.check_sidecars(["units", "whisper"], opened.splits)
    samples = all_samples(dataset, {"units": ["units.npy"], "whisper": ["teacher.npy"]})
    assert all(s.features["units"]["units.npy"].max() < 16 for s in samples.values())
    card = (dataset / "README.md").read_text()
    assert "config_name: units" in card and "config_name: whisper" in card


@pytest.mark.e2e
def test_refitted_units_are_refused_until_overwrite_redoes_the_set(demo_copy):
    with pytest.raises(FileExistsError, match="--overwrite"):
        fit_units(demo_copy, k=8, seed=0)
    fit_units(demo_copy, k=8, seed=0, overwrite=True)
    assert not (demo_copy / "features" / "units" / "feature.json").exists()
    run_extract(ExtractConfig(dataset_dir=demo_copy, feature_sets=("units",), progress=False))
    info = Dataset.open_folder(demo_copy).feature_set("units")
    assert info.dims == 8
    codes = all_samples(demo_copy, {"units": ["units.npy"]})
    assert max(int(s.features["units"]["units.npy"].max()) for s in codes.values()) < 8


@pytest.mark.e2e
def test_a_rerun_with_other_model_files_is_refused_or_redone(demo_copy):
    settings = demo_copy / "features" / ".build" / "whisper" / "settings.json"
    saved = json.loads(settings.read_text())
    saved["described"]["model"]["files"]["model.bin"] = "0" * 64  # as if another model
    settings.write_text(json.dumps(saved))
    config = ExtractConfig(dataset_dir=demo_copy, feature_sets=("whisper",), progress=False)
    with pytest.raises(ValueError, match="other settings"):
        run_extract(config)
    summary = run_extract(ExtractConfig(dataset_dir=demo_copy, feature_sets=("whisper",),
                                        overwrite=True, progress=False))
    assert summary.feature_sets["whisper"].checks.clips > 0
    assert json.loads(settings.read_text())["described"]["model"]["files"]["model.bin"] != \
        "0" * 64


@pytest.mark.e2e
def test_killed_extraction_resumes_to_identical_sidecars(demo_features, tmp_path):
    copy = tmp_path / "dataset"
    shutil.copytree(demo_features, copy, ignore=shutil.ignore_patterns("features"))
    shutil.copytree(demo_features / "features" / "units", copy / "features" / "units",
                    ignore=shutil.ignore_patterns("train", "val", "test", "feature.json"))
    command = [sys.executable, "-c", "from unitaf_cli.data_app import app; app()",
               "extract-features", str(copy), "--workers", "1"]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: markers(copy / "features" / ".build", "whisper") >= 1, first)
    kill_everything(first)
    assert subprocess.run(command, capture_output=True, timeout=600).returncode == 0
    for path in sorted(demo_features.glob("features/*/*/*.tar")):
        assert (copy / path.relative_to(demo_features)).read_bytes() == path.read_bytes(), path


def test_batches_group_similar_lengths_and_keep_every_clip():
    clips = [ClipInput(f"k{i}", np.zeros(n, np.float32), "", n / 16000)
             for i, n in enumerate([32000, 32000, 48000, 32010, 16000])]
    exact = length_batches(clips, batch_seconds=10, same_length=True)
    assert sorted(i for b in exact for i in b) == list(range(5))
    assert sorted(map(sorted, exact)) == [[0, 1, 3], [2], [4]]  # 32000, 32010: 100 frames
    padded = length_batches(clips, batch_seconds=5, same_length=False)
    assert all(len(b) * max(len(clips[i].audio) for i in b) / 16000 <= 5 for b in padded)


def test_feature_checks_count_length_nan_and_shape_problems_by_kind():
    declared = {"teacher.npy": FieldSpec("float16", ("T", 4))}
    good = {"teacher.npy": np.zeros((100, 4), np.float16)}
    assert check_features("k", 2.0, good, declared) == []
    bad = {"teacher.npy": np.full((90, 3), np.nan, np.float16)}
    kinds = {kind for kind, _ in check_features("k", 2.0, bad, declared)}
    assert kinds == {"frames_off", "non_finite", "bad_shape"}


def test_a_backend_refusal_becomes_a_rejection_record_with_a_countable_reason():
    rejection = refusal("demo-a-b-0001", "text_too_long_for_gpt: 700 tokens > 600")
    assert (rejection.what, rejection.where, rejection.reason, rejection.detail) == (
        "clip", "demo-a-b-0001", "text_too_long_for_gpt", "700 tokens > 600")
    with pytest.raises(ValueError, match="reason code"):
        refusal("k", "Some free text: no code")


def test_actors_are_no_more_than_the_cluster_memory_holds():
    from unitaf_pipelines.runtime import actor_options

    resources = {"CPU": 2.0, "memory": 12e9}
    count, options = actor_options("cpu", None, memory_per_worker=8e9, resources=resources)
    assert count == 1 and options["memory"] == 8e9
    count, options = actor_options("cpu", None, memory_per_worker=24e9, resources=resources)
    assert count >= 1 and "memory" not in options  # not even one fits: do not hang
    count, options = actor_options("cpu", 2, memory_per_worker=8e9, resources=resources)
    assert count == 2 and "memory" not in options
