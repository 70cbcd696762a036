"""Real corpus layouts (BEAT2, folder, UniTalker) built through Ray, bad input included."""

from __future__ import annotations

import json
import re

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from corpora import demo_recordings, make_beat2, make_folder, make_unitalker
from reference import all_samples
from unitaf_cli.data_app import app
from unitaf_data.sources import SourceOptions, beat2
from unitaf_pipelines.build import BuildConfig, run_build

pytest.importorskip("espeakng_loader")
pytestmark = pytest.mark.e2e
runner = CliRunner()


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    return demo_recordings(tmp_path_factory.mktemp("speech"))


@pytest.fixture(scope="module")
def beat2_build(recordings, tmp_path_factory):
    root = tmp_path_factory.mktemp("beat2") / "beat_english_v2.0.0"
    expected = make_beat2(root, recordings)
    out = root.parent / "dataset"
    result = runner.invoke(app, [
        "build", "--source", "beat2", "--input", str(root), "--out", str(out),
        "--flame-to-arkit", str(root.parent / "mat_final.npy"), "--min-seconds", "1"])
    return root, out, expected, result


def _samples(out):
    return all_samples(out)


def test_beat2_bad_input_is_rejected_with_its_reason_and_the_run_succeeds(beat2_build):
    _, out, expected, result = beat2_build
    assert result.exit_code == 0, result.output
    rejected = pq.read_table(out / "rejected.parquet").to_pylist()
    by_recording = {r["where"]: r["reason"] for r in rejected if r["what"] == "recording"}
    for stem, reason in expected.items():
        if stem.startswith("6_carla") and reason != "nan_span":
            assert by_recording.get(f"beat2-6_carla-{stem}") == reason, stem
    nan_rejects = [r for r in rejected if r["where"].startswith("beat2-6_carla-6_carla_0_17_17")]
    assert [r["reason"] for r in nan_rejects] == ["face_not_finite"]
    assert re.search(r"(recording|clip)\s*│\s*face_not_finite\s*│\s*\d", result.output), \
        result.output


def test_beat2_labels_splits_and_additional(beat2_build):
    _, out, _, _ = beat2_build
    manifest = pq.read_table(out / "manifest.parquet").to_pylist()
    recordings = {(r["recording"], r["speaker"], r["split"], r["emotion"]) for r in manifest}
    assert ("2_scott_0_65_65", "2_scott", "train", "happiness") in recordings
    assert ("2_scott_0_3_3", "2_scott", "val", "neutral") in recordings
    assert ("4_lawrence_1_1_1", "4_lawrence", "test", "neutral") in recordings
    assert not any(r[0] == "2_scott_0_100_100" for r in recordings)  # additional: skipped
    kept_nan = [r for r in manifest if r["recording"] == "6_carla_0_17_17"]
    assert kept_nan  # clips away from the NaN span survive


def test_beat2_flame_converted_back_to_arkit_matches_the_original(beat2_build, recordings):
    _, out, _, _ = beat2_build
    info = json.loads((out / "unitaf.json").read_text())
    assert info["face_type"] == "arkit51" and info["fps"] == 30.0
    original = recordings[0]["face"]
    for key, sample in _samples(out).items():
        if "2_scott_0_65_65" not in key:
            continue
        meta = sample.meta
        first = round(meta.start * meta.fps)  # alignment: exact frames of the source
        np.testing.assert_allclose(sample.face, original[first : first + len(sample.face)],
                                   atol=1e-4)
        assert meta.text_source == "reference" and meta.reference_text


def test_beat2_keeps_flame103_without_a_matrix(beat2_build):
    root, _, _, _ = beat2_build
    ref = next(r for r in beat2.discover(root) if r.recording == "2_scott_0_65_65")
    recording = beat2.load(ref)
    assert recording.face_type == "flame103" and recording.face.shape[1] == 103
    assert recording.reference_words[0].word


def test_beat2_hub_id_offline_fails_with_a_clear_message(tmp_path, hub_offline):
    with pytest.raises(FileNotFoundError, match="download BEAT2 yourself"):
        beat2.discover("some-org/beat2-mirror", SourceOptions())


def test_strict_turns_rejections_into_a_failing_exit(beat2_build):
    root, out, _, _ = beat2_build
    result = runner.invoke(app, [
        "build", "--source", "beat2", "--input", str(root), "--out", str(out),
        "--flame-to-arkit", str(root.parent / "mat_final.npy"), "--min-seconds", "1",
        "--strict"])
    assert result.exit_code == 1 and "--strict" in result.output


@pytest.fixture(scope="module")
def folder_build(recordings, tmp_path_factory):
    """(dataset folder, summary) of the folder corpus: .npy, .csv and BEAT-v1 .json faces,
    .txt / .TextGrid / no transcripts."""
    root = tmp_path_factory.mktemp("folder")
    make_folder(root / "corpus", recordings)
    config = BuildConfig(
        source="folder", input_dir=root / "corpus", out_dir=root / "dataset",
        source_options=SourceOptions(face_fps=30.0, face_fps_out=30.0,
                                     channel_names=str(root / "corpus" / "channels.txt")),
        progress=False)
    return root / "dataset", run_build(config)


def test_folder_source_reads_npy_csv_and_beat_v1_json(folder_build, recordings):
    out, summary = folder_build
    rejected = pq.read_table(out / "rejected.parquet").to_pylist()
    assert {(r["where"], r["reason"]) for r in rejected if r["what"] == "recording"} == {
        ("folder-alice-alice_orphan", "missing_face")}
    samples = _samples(out)
    assert {s.meta.speaker for s in samples.values()} == {"alice", "bob", "carol"}
    assert summary.clips == len(samples)
    for sample in samples.values():
        meta = sample.meta
        rec = recordings[{"alice": 0, "bob": 3, "carol": 4}[meta.speaker]]
        first = round(meta.start * 30)
        np.testing.assert_allclose(sample.face, rec["face"][first : first + meta.num_frames],
                                   atol=1e-5)
        if meta.speaker == "carol":  # no transcript beside the json
            assert meta.text_source == "asr" and meta.reference_text is None
        else:  # .txt aligned to the ASR words, or the TextGrid's own times
            assert meta.text_source == "reference" and meta.wer < 0.5


def test_unitalker_layout_keeps_its_splits_and_arkit_order(recordings, tmp_path):
    make_unitalker(tmp_path / "corpus", recordings)
    run_build(BuildConfig(source="unitalker", input_dir=tmp_path / "corpus",
                          out_dir=tmp_path / "dataset", progress=False))
    manifest = pq.read_table(tmp_path / "dataset" / "manifest.parquet").to_pylist()
    assert {(r["speaker"], r["split"]) for r in manifest} == {("subject_train", "train"),
                                                             ("subject_val", "val")}
    info = json.loads((tmp_path / "dataset" / "unitaf.json").read_text())
    assert info["face_type"] == "arkit51"


def test_a_dataset_with_and_without_transcripts_loads_with_datasets(folder_build):
    from datasets import load_dataset

    out, _ = folder_build
    rows = [row for split in load_dataset(str(out)).values() for row in split]
    assert {row["json"]["reference_text"] is None for row in rows} == {True, False}
