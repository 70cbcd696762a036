"""End to end: a ~1-minute demo corpus through Ray, checked against the dataset contract."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from reference import all_samples
from unitaf_data.dataset import Dataset
from unitaf_data.reader import sha256_of
from unitaf_data.schema import SCHEMA_VERSION
from unitaf_data.testing import bilabial_closure_agreement, lip_closed_frames, word_errors

pytestmark = pytest.mark.e2e


def _samples(out_dir):
    return list(all_samples(out_dir).values())


def test_layout_and_tables(demo_build):
    config, summary = demo_build
    out = config.out_dir
    info = json.loads((out / "unitaf.json").read_text())
    assert info["schema_version"] == SCHEMA_VERSION and info["face_type"] == "arkit51"
    assert len(info["channels"]) == 51 and info["fps"] == 30.0 and info["sample_rate"] == 16000
    assert (out / "README.md").read_text().startswith("---\n")
    for shard, record in info["shards"].items():  # every shard recorded as written
        path = out / "data" / shard.split("/")[0] / f"{shard.split('/')[1]}.tar"
        assert record["bytes"] == path.stat().st_size and record["sha256"] == sha256_of(path)
    manifest = pq.read_table(out / "manifest.parquet").to_pylist()
    assert len(manifest) == summary.clips > 0
    assert {"key", "split", "shard", "speaker", "duration", "text", "emotion"} <= set(manifest[0])
    assert pq.read_table(out / "rejected.parquet").column_names == [
        "what", "where", "reason", "detail"]
    assert all(p.name.startswith(p.parent.name + "-") for p in out.glob("data/*/*.tar"))


def test_every_sample_meets_the_contract(demo_build):
    config, summary = demo_build
    samples = _samples(config.out_dir)
    keys = [s.key for s in samples]
    assert len(keys) == len(set(keys)) == summary.clips
    for sample in samples:
        key, meta, face = sample.key, sample.meta, sample.face
        assert "." not in key and "/" not in key and meta.key == key
        audio, sr = sf.read(io.BytesIO(sample.flac))
        info = sf.info(io.BytesIO(sample.flac))
        assert sr == 16000 and info.channels == 1 and info.subtype == "PCM_16"
        assert face.dtype == np.float32 and face.shape == (meta.num_frames, 51)
        assert abs(len(audio) - round(len(face) * sr / meta.fps)) <= 1, key
        assert abs(meta.start * meta.fps - round(meta.start * meta.fps)) < 1e-6
        stored = json.loads(_raw_json(config.out_dir, sample))
        for field in ("text", "words", "language", "speaker", "emotion", "split", "source",
                      "recording", "start", "end", "duration", "sample_rate", "fps",
                      "face_type", "asr", "reference_text", "wer"):
            assert field in stored, (key, field)
        assert set(stored["asr"]) == {"model", "text", "avg_logprob", "no_speech_prob",
                                      "compression_ratio"}


def _raw_json(out_dir, sample) -> bytes:
    """The sample's json member as stored, read with tarfile directly."""
    import tarfile

    split, name = sample.shard.split("/")
    with tarfile.open(out_dir / "data" / split / f"{name}.tar") as archive:
        return archive.extractfile(f"{sample.key}.json").read()


def test_face_and_audio_are_the_recordings_own_frames(demo_build):
    config, _ = demo_build
    corpus = config.out_dir / ".build" / "demo-corpus"
    for sample in _samples(config.out_dir)[:4]:
        meta = sample.meta
        full = np.load(corpus / f"{meta.recording}.face.npy")
        first = round(meta.start * meta.fps)
        np.testing.assert_array_equal(sample.face, full[first : first + meta.num_frames])


def test_lip_closures_match_bilabials_after_the_cut(demo_build):
    config, _ = demo_build
    corpus = config.out_dir / ".build" / "demo-corpus"
    recalls, precisions = [], []
    for sample in _samples(config.out_dir):
        meta = sample.meta
        timeline = json.loads((corpus / f"{meta.recording}.timeline.json").read_text())
        in_clip = [(lab, s - meta.start, e - meta.start) for lab, s, e in
                   timeline["phonemes"]]
        closed = lip_closed_frames(sample.face, _channels(config))
        recall, precision = bilabial_closure_agreement(closed, in_clip, meta.fps)
        recalls.append(recall)
        precisions.append(precision)
    print(f"bilabial closure: recall {np.mean(recalls):.3f}, precision {np.mean(precisions):.3f}")
    assert min(recalls) == 1.0 and np.mean(precisions) >= 0.95


def _channels(config):
    return Dataset.open_folder(config.out_dir).info.channels


def test_asr_text_matches_the_synthesised_sentences(demo_build):
    config, _ = demo_build
    errors, words = 0, 0
    for sample in _samples(config.out_dir):
        e, n = word_errors(sample.meta.reference_text, sample.meta.asr.text)
        errors, words = errors + e, words + n
    print(f"WER {errors / words:.3f} over {words} reference words")
    assert errors / words <= 0.3


def test_shards_load_with_datasets_on_cpu(demo_build):
    from datasets import load_dataset

    config, summary = demo_build
    splits = load_dataset(str(config.out_dir))
    assert sum(len(split) for split in splits.values()) == summary.clips
    row = splits["train"][0]
    assert isinstance(row["flac"], bytes) and np.asarray(row["face.npy"]).shape[1] == 51
    assert row["json"]["key"] == row["__key__"]


def test_rerun_resumes_without_rewriting_and_rebuild_is_byte_identical(demo_build, tmp_path):
    from dataclasses import replace

    from unitaf_pipelines.build import run_build

    config, summary = demo_build
    tars = {p: p.read_bytes() for p in config.out_dir.glob("data/*/*.tar")}
    stamps = {p: p.stat().st_mtime_ns for p in tars}
    again = run_build(config)
    assert again.clips == summary.clips
    assert {p: p.stat().st_mtime_ns for p in tars} == stamps  # nothing rewritten
    fresh = run_build(replace(config, out_dir=tmp_path / "fresh"))
    assert fresh.clips == summary.clips
    for path, data in tars.items():
        assert (tmp_path / "fresh" / path.relative_to(config.out_dir)).read_bytes() == data


def test_changed_settings_refuse_to_mix_into_an_existing_build(demo_build):
    from dataclasses import replace

    from unitaf_pipelines.build import run_build

    config, _ = demo_build
    with pytest.raises(ValueError, match="other settings"):
        run_build(replace(config, seed=config.seed + 1))
