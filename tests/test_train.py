"""Training on demo data with the offline backends: both stages, resume, Ray Train, configs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from unitaf_cli.main_app import app
from unitaf_data.extract import fit_units
from unitaf_model.config import load_config
from unitaf_model.distributed import train
from unitaf_pipelines.build import BuildConfig, run_build
from unitaf_pipelines.extract import ExtractConfig, run_extract

pytest.importorskip("espeakng_loader")
pytestmark = pytest.mark.e2e
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _validations(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "validation.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A 6-minute demo dataset with units (k=128), Whisper teacher and utterance features."""
    out = tmp_path_factory.mktemp("train") / "dataset"
    run_build(BuildConfig(source="demo", out_dir=out, demo_minutes=6.0, seed=0, progress=False))
    fit_units(out, k=128, seed=0)
    run_extract(ExtractConfig(dataset_dir=out, feature_sets=("whisper", "units", "utterance"),
                              progress=False))
    return out


@pytest.fixture(scope="module")
def stage1(dataset, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "stage1"
    train(load_config(CONFIGS / "demo_stage1.yaml", ["steps=150", "val_every=150"],
                      data=str(dataset), out=str(run)))
    return run


def test_stage1_validation_loss_falls_by_half(stage1):
    runs = _validations(stage1)
    print(f"stage I validation loss: {runs[0]['loss']:.3f} → {runs[-1]['loss']:.3f}")
    assert runs[-1]["loss"] <= 0.5 * runs[0]["loss"]
    assert (stage1 / "config.json").exists() and list((stage1 / "tensorboard").iterdir())


def test_stage2_beats_the_train_mean_face_on_validation(dataset, stage1, tmp_path):
    run = tmp_path / "stage2"
    train(load_config(CONFIGS / "demo_stage2.yaml", ["steps=150", "val_every=150"],
                      data=str(dataset), out=str(run), init=str(stage1)))
    last = _validations(run)[-1]
    print(f"stage II validation vertex MSE {last['vertex_mse']:.3e} vs mean face "
          f"{last['mean_face_vertex_mse']:.3e}; LVE {last['lip_vertex_error']:.3e}")
    assert last["vertex_mse"] < last["mean_face_vertex_mse"]
    interval = json.loads((run / "mouth_interval.json").read_text())
    assert 0 < interval["low"] < interval["high"]


def test_resume_reproduces_the_uninterrupted_loss_curve(dataset, tmp_path):
    settings = ["steps=24", "checkpoint_every=12", "val_every=100", "warmup_steps=4"]
    whole = train(load_config(CONFIGS / "demo_stage1.yaml", settings, data=str(dataset),
                              out=str(tmp_path / "whole")))
    shutil.copytree(tmp_path / "whole", tmp_path / "cut")
    shutil.rmtree(tmp_path / "cut" / "step_000024")  # as if killed after step 12
    resumed = train(load_config(CONFIGS / "demo_stage1.yaml", settings, data=str(dataset),
                                out=str(tmp_path / "cut")))
    assert [round(r["loss"], 6) for r in resumed] == [round(r["loss"], 6) for r in whole]
    first = torch.load(tmp_path / "whole" / "step_000024" / "model.pt", weights_only=True)
    again = torch.load(tmp_path / "cut" / "step_000024" / "model.pt", weights_only=True)
    for name, tensor in first.items():
        torch.testing.assert_close(again[name], tensor)


def test_two_worker_ray_train_run_completes(dataset, tmp_path):
    run = tmp_path / "ray"
    history = train(load_config(CONFIGS / "demo_stage1.yaml",
                                ["steps=6", "val_every=6", "num_workers=2"],
                                data=str(dataset), out=str(run)))
    assert len(history) == 6 and (run / "step_000006" / "model.pt").exists()
    assert [v["step"] for v in _validations(run)] == [0, 6]


def test_shipped_configs_validate_and_bad_keys_are_refused(tmp_path):
    for path in sorted(CONFIGS.glob("*.yaml")):
        load_config(path, data="d", out="o", init="r")
    with pytest.raises(ValueError, match="unknown config key"):
        load_config(None, ["stepz=3"], data="d", out="o")
    with pytest.raises(ValueError, match="not a int"):
        load_config(None, ["steps=many"], data="d", out="o")
    with pytest.raises(ValueError, match="--init"):
        load_config(None, ["stage=2"], data="d", out="o")


def test_eval_reports_a_run_on_the_test_split(stage1):
    result = CliRunner().invoke(app, ["eval", str(stage1), "--split", "test"])
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "at step 150 on test" in flat and "│ loss" in flat


def test_cli_refuses_to_overwrite_a_run_without_resume(stage1, dataset):
    result = CliRunner().invoke(app, ["train", "--data", str(dataset), "--out", str(stage1),
                                      "--stage", "1"])
    assert result.exit_code == 2 and "--resume" in result.output


def test_a_hub_dataset_id_offline_fails_with_a_clear_message(hub_offline):
    from unitaf_model.data import resolve_dataset

    with pytest.raises(FileNotFoundError, match="Hugging Face Hub"):
        resolve_dataset("some-org/unitaf-demo")


def test_inputs_are_sized_from_their_field_and_a_wrong_kind_is_refused():
    from unitaf_model.train import field_width

    codes = {"name": "semantic_codes", "dims": 8192,
             "fields": {"semantic_codes.npy": {"dtype": "int16", "shape": ["T"]}}}
    latents = {"name": "tts_latent", "dims": 1024,
               "fields": {"tts_latent.npy": {"dtype": "float16", "shape": ["T", 1280]},
                          "gpt_layer.npy": {"dtype": "float16", "shape": ["T", 1024]}}}
    assert field_width(codes, "semantic_codes.npy", "units") == 8192
    assert field_width(latents, "tts_latent.npy", "precomputed") == 1280
    with pytest.raises(ValueError, match="not the \\(T, D\\) features"):
        field_width(codes, "semantic_codes.npy", "precomputed")
    with pytest.raises(ValueError, match="has no field latent.npy"):
        field_width(latents, "latent.npy", "precomputed")
