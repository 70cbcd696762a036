"""Training: pinned losses and exact resume on a small dummy dataset (fast), both stages on
the demo dataset with the offline backends, Ray Train, configs, and runs that load alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from unitaf_data.testing import write_dummy_dataset
from unitaf_model.config import load_config
from unitaf_model.distributed import train
from unitaf_model.run import load_run, load_weights

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FAST = ["steps=4", "val_every=2", "checkpoint_every=2", "warmup_steps=2", "batch_size=2",
        "shuffle_buffer=4", "log_every=1"]


def _validations(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "validation.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def dummy(tmp_path_factory) -> Path:
    return write_dummy_dataset(tmp_path_factory.mktemp("dummy") / "dataset")


@pytest.fixture(scope="module")
def dummy_stage1(dummy, tmp_path_factory) -> tuple[Path, list[dict]]:
    run = tmp_path_factory.mktemp("runs") / "stage1"
    history = train(load_config(CONFIGS / "demo_stage1.yaml", FAST, data=str(dummy),
                                out=str(run)))
    return run, history


def test_a_few_seeded_steps_give_pinned_losses(dummy, dummy_stage1, tmp_path):
    _, stage1 = dummy_stage1
    stage2 = train(load_config(CONFIGS / "demo_stage2.yaml", FAST, data=str(dummy),
                               out=str(tmp_path / "stage2"), init=str(dummy_stage1[0])))
    print("stage I", [round(r["loss"], 5) for r in stage1],
          "stage II", [round(r["loss"], 5) for r in stage2])
    assert [r["loss"] for r in stage1] == pytest.approx(PINNED_STAGE1, rel=2e-3)
    assert [r["loss"] for r in stage2] == pytest.approx(PINNED_STAGE2, rel=2e-3)


PINNED_STAGE1 = [1.37257, 0.84488, 0.73707, 0.61899]
PINNED_STAGE2 = [0.0631, 0.02398, 1.42939, 0.89453]


def test_resume_reproduces_the_uninterrupted_loss_curve(dummy, dummy_stage1, tmp_path):
    whole_run, whole = dummy_stage1
    shutil.copytree(whole_run, tmp_path / "cut")
    shutil.rmtree(tmp_path / "cut" / "step_000004")  # as if killed after step 2
    resumed = train(load_config(CONFIGS / "demo_stage1.yaml", FAST, data=str(dummy),
                                out=str(tmp_path / "cut")))
    assert [round(r["loss"], 6) for r in resumed] == [round(r["loss"], 6) for r in whole]
    first = load_weights(whole_run / "step_000004" / "model.safetensors")
    again = load_weights(tmp_path / "cut" / "step_000004" / "model.safetensors")
    for name, tensor in first.items():
        torch.testing.assert_close(again[name], tensor)


def test_a_run_loads_without_its_dataset_and_from_another_directory(dummy, dummy_stage1,
                                                                    tmp_path, monkeypatch):
    run, _ = dummy_stage1
    moved = tmp_path / "elsewhere" / "run"
    shutil.copytree(run, moved)
    before = {p: p.read_bytes() for p in moved.rglob("*") if p.is_file()}
    monkeypatch.chdir(tmp_path)
    loaded = load_run(moved.relative_to(tmp_path))
    face = loaded.predict(torch.zeros(50, 8, dtype=torch.float16).numpy(), "spk0")
    assert face.shape == (25, 51) and loaded.info.model.backbone_size == 8
    assert loaded.info.dataset["path"] == str(dummy.resolve())
    assert {p: p.read_bytes() for p in moved.rglob("*") if p.is_file()} == before


def test_the_best_validation_step_is_kept(dummy_stage1):
    run, _ = dummy_stage1
    best = json.loads((run / "best" / "best.json").read_text())
    losses = {v["step"]: v["loss"] for v in _validations(run) if v["step"] > 0}
    assert best["step"] == min(losses, key=losses.get) and best["metric"] == "val/loss"


def test_shipped_configs_validate_and_bad_keys_are_refused(tmp_path):
    for path in sorted(CONFIGS.glob("*.yaml")):
        load_config(path, data="d", out="o", init="r")
    with pytest.raises(ValueError, match="unknown config key"):
        load_config(None, ["stepz=3"], data="d", out="o")
    with pytest.raises(ValueError, match="not a int"):
        load_config(None, ["steps=many"], data="d", out="o")
    with pytest.raises(ValueError, match="--init"):
        load_config(None, ["stage=2"], data="d", out="o")


@pytest.mark.e2e
def test_stage1_then_stage2_learn_on_the_demo_dataset(demo_features, tmp_path):
    stage1, stage2 = tmp_path / "stage1", tmp_path / "stage2"
    train(load_config(CONFIGS / "demo_stage1.yaml", ["steps=150", "val_every=150"],
                      data=str(demo_features), out=str(stage1)))
    first, last = _validations(stage1)[0], _validations(stage1)[-1]
    print(f"stage I validation loss: {first['loss']:.3f} → {last['loss']:.3f}")
    assert last["loss"] <= 0.5 * first["loss"]
    train(load_config(CONFIGS / "demo_stage2.yaml", ["steps=150", "val_every=150"],
                      data=str(demo_features), out=str(stage2), init=str(stage1)))
    end = _validations(stage2)[-1]
    print(f"stage II validation LVE {end['lve']:.3e} vs mean face {end['mean_face_lve']:.3e}")
    assert end["lve"] < end["mean_face_lve"]
    interval = json.loads((stage2 / "model.json").read_text())["mouth_interval"]
    assert 0 < interval["low"] < interval["high"]


@pytest.mark.e2e
def test_two_worker_ray_train_run_completes(dummy, tmp_path):
    run = tmp_path / "ray"
    history = train(load_config(CONFIGS / "demo_stage1.yaml",
                                [*FAST, "steps=2", "num_workers=2"],
                                data=str(dummy), out=str(run)))
    assert len(history) == 2 and (run / "step_000002" / "model.safetensors").exists()
    assert [v["step"] for v in _validations(run)] == [0, 2]


def test_a_hub_dataset_id_offline_fails_with_a_clear_message(hub_offline):
    from unitaf_data.dataset import Dataset

    with pytest.raises(FileNotFoundError, match="Hugging Face Hub"):
        Dataset.open("some-org/unitaf-demo")
