"""`unitaf eval` and `unitaf animate`: runs loaded read-only, the report, a test-only dataset,
comparisons, videos, and audio → face on the offline front end."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from runs import train_demo_stages
from unitaf_cli.main_app import app
from unitaf_data.testing import write_dummy_dataset

STEPS = ["steps=3", "val_every=3", "checkpoint_every=3", "batch_size=2", "warmup_steps=1"]
runner = CliRunner()


def _train(dataset: Path, root: Path) -> Path:
    return train_demo_stages(dataset, root, STEPS)


@pytest.fixture(scope="module")
def dummy_run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("eval")
    dataset = write_dummy_dataset(root / "dataset")
    return dataset, _train(dataset, root)


def _hashes(run: Path) -> dict[str, str]:
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*")) if p.is_file() and "eval" not in p.parts}


def test_eval_reads_the_run_without_touching_it_and_reports_every_metric(dummy_run):
    _, run = dummy_run
    before = _hashes(run)
    result = runner.invoke(app, ["eval", str(run)])
    assert result.exit_code == 0, result.output
    assert _hashes(run) == before
    report = json.loads((run / "eval" / "test" / "eval.json").read_text())
    assert set(report["systems"]) == {"stage2", "train-mean face", "ground truth"}
    truth = report["systems"]["ground truth"]
    for name in ("lve", "lvd", "mouth_l2", "mve", "expression_l2", "fdd", "fdd_abs",
                 "jitter", "jitter_ratio", "bcs", "bcs_mean_lip_score", "bcs_rig_openness",
                 "closure_precision", "closure_f1", "closure_outside_bilabials",
                 "closure_frame_agreement", "closure_interval_agreement", "silence_jaw_open",
                 "silence_openness_ratio", "lve_vs_mean_face", "av_offset",
                 "av_offset_agreement", "jaw_open_correlation"):
        entry = report["systems"]["stage2"][name]
        assert entry["variant"] and entry["units"] and entry["pooling"], name
    assert truth["lve"]["value"] == truth["mouth_l2"]["value"] == 0.0
    assert truth["jitter_ratio"]["value"] == 1.0 and truth["silence_openness_ratio"][
        "value"] == 1.0
    # one one-frame-or-longer /m/ per clip: the 95th percentile bounds all but the largest
    bcs = truth["bcs"]
    assert bcs["value"] == (bcs["count"] - 1) / bcs["count"] and "2606.13630" in bcs["variant"]
    assert report["phones"] == {"corpus": report["clips"]}
    assert report["rig"]["upper_set"] and report["rig"]["lip_set"]
    table = (run / "eval" / "test" / "eval.md").read_text()
    assert "| lve | rig units² |" in table and "lip_closure.py" in table
    for plot in ("openness_histogram.png", "clip_curves.png"):
        assert (run / "eval" / "test" / plot).read_bytes()[:4] == b"\x89PNG"


def test_eval_runs_on_a_dataset_with_only_a_test_split_and_compares_runs(dummy_run,
                                                                        tmp_path):
    dataset, run = dummy_run
    only_test = write_dummy_dataset(tmp_path / "test-only", {"test": 3}, seed=5)
    other = tmp_path / "other"
    shutil.copytree(run, other)
    out = tmp_path / "report"
    result = runner.invoke(app, ["eval", str(run), "--data", str(only_test), "--compare",
                                 str(other), "--out", str(out), "--video", "1"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "eval.json").read_text())
    assert report["clips"] == 3 and "other" in report["systems"]
    assert report["systems"]["stage2"]["lve"] == report["systems"]["other"]["lve"]
    import av

    video = next((out / "videos").glob("*.mp4"))
    with av.open(str(video)) as container:
        assert {s.type for s in container.streams} == {"video", "audio"}


def test_eval_of_a_folder_that_is_not_a_run_says_so(tmp_path):
    result = runner.invoke(app, ["eval", str(tmp_path)])
    assert result.exit_code == 2 and "not a unitaf run" in " ".join(result.output.split())


def test_eval_of_a_split_the_dataset_lacks_names_the_splits_it_has(dummy_run, tmp_path):
    _, run = dummy_run
    only_test = write_dummy_dataset(tmp_path / "test-only", {"test": 2}, seed=6)
    result = runner.invoke(app, ["eval", str(run), "--data", str(only_test), "--split", "val"])
    assert result.exit_code == 2 and "no val split" in " ".join(result.output.split())


def test_animate_refuses_a_run_whose_input_needs_a_tts(tmp_path):
    from runs import write_random_run

    run = write_random_run(tmp_path / "run", "precomputed", 1024, "tts_latent",
                           "gpt_layer.npy", {"backend": "indextts2", "set": "tts_latent",
                                            "field": "gpt_layer.npy"})
    (tmp_path / "a.wav").write_bytes(b"")
    result = runner.invoke(app, ["animate", "--run", str(run), "--audio",
                                 str(tmp_path / "a.wav"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "unitaf infer" in " ".join(result.output.split())


@pytest.mark.e2e
def test_eval_under_conditions_recomputes_the_clean_input_exactly_and_degrades_the_rest(
        demo_features, tmp_path):
    run = _train(demo_features, tmp_path)
    out = tmp_path / "report"
    result = runner.invoke(app, ["eval", str(run), "--out", str(out), "--conditions",
                                 "clean,noise10,lead_silence", "--seed", "3"])
    assert result.exit_code == 0, result.output
    plain = json.loads((out / "eval.json").read_text())["systems"]
    found = json.loads((out / "conditions.json").read_text())
    assert list(found["conditions"]) == ["clean", "noise10", "lead_silence"]
    clean, noisy = found["conditions"]["clean"], found["conditions"]["noise10"]
    for name in ("lve", "mouth_l2", "bcs", "jaw_open_correlation"):  # the sidecars, recomputed
        assert clean["stage2"][name]["value"] == pytest.approx(plain["stage2"][name]["value"],
                                                               rel=1e-6), name
    assert noisy["stage2"]["lve"]["value"] != clean["stage2"]["lve"]["value"]
    lead = found["conditions"]["lead_silence"]
    assert lead["ground truth"]["noise_only_openness_ratio"]["value"] == 1.0
    assert lead["stage2"]["noise_only_jaw_open"]["value"] >= 0
    table = (out / "conditions.md").read_text()
    assert "| lve | " in table and "noise_only_openness_ratio" in table
    # a condition's noise does not depend on the other conditions asked for
    alone = runner.invoke(app, ["eval", str(run), "--out", str(tmp_path / "alone"),
                                "--conditions", "noise10", "--seed", "3"])
    assert alone.exit_code == 0, alone.output
    by_itself = json.loads((tmp_path / "alone" / "conditions.json").read_text())
    assert by_itself["conditions"]["noise10"]["stage2"]["lve"] == noisy["stage2"]["lve"]
    bad = runner.invoke(app, ["eval", str(run), "--conditions", "clean,underwater"])
    assert bad.exit_code == 2 and "underwater" in bad.output


@pytest.mark.e2e
def test_animate_writes_all_five_outputs_and_a_video_for_audio_it_never_saw(demo_features,
                                                                           tmp_path):
    import soundfile as sf

    from unitaf_model.outputs.exports import FILE_FORMATS

    run = _train(demo_features, tmp_path)
    speech = next((demo_features / ".build" / "demo-corpus").glob("*.wav"))
    audio, rate = sf.read(speech)
    from livelink_receiver import Receiver

    out = tmp_path / "faces"
    receiver = Receiver()
    try:
        receiver.start(round(len(audio) / rate * 25), timeout=300)
        result = runner.invoke(app, ["animate", "--run", str(run), "--audio", str(speech),
                                     "--out", str(out), "--video", "--fps", "25",
                                     "--livelink", f"127.0.0.1:{receiver.port}"])
        assert result.exit_code == 0, result.output
        packets = receiver.join()
    finally:
        receiver.close()
    for suffix in (*FILE_FORMATS, "mp4"):
        assert (out / f"{speech.stem}.{suffix}").stat().st_size > 0, suffix
    face = np.load(out / f"{speech.stem}.npy")
    assert face.shape == (round(len(audio) / rate * 25), 51)
    # streamed too: every frame in order, as subject "unitaf", with the .npy's values
    assert [p["frame"] for p in packets] == list(range(len(face)))
    assert {p["subject"] for p in packets} == {"unitaf"} and packets[0]["rate"] == 25
    np.testing.assert_allclose([p["values"]["MouthClose"] for p in packets],
                               np.clip(face[:, 20], 0, 1), atol=1e-7)  # MouthClose
