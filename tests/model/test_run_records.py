"""Crash-safe run records: `best/` and checkpoints are swapped in whole (a crash at any point
leaves the old complete folder or the new one, and a restart cleans what it left); a
training split with no usable sample stops with the reason instead of spinning; model.json
is validated field by field, errors naming the field."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from runs import write_random_run
from unitaf_cli.main_app import app
from unitaf_data.dataset import Dataset
from unitaf_data.records import RecordError
from unitaf_data.testing import write_dummy_dataset
from unitaf_model.run import (
    BEST,
    checkpoint_folder,
    load_run,
    load_weights,
    recover_run,
    save_best,
)
from unitaf_model.training.data import ClipStream, DataSpec

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
FRONT_END = {"backend": "offline", "set": "whisper", "field": "teacher.npy",
             "model": {"name": "tiny.en"}}


def _state(value: float) -> dict[str, torch.Tensor]:
    return {"w": torch.full((3,), value)}


def _best(run: Path) -> tuple[float, int]:
    folder = checkpoint_folder(run, BEST)
    return float(load_weights(folder / "model.safetensors")["w"][0]), \
        json.loads((folder / "best.json").read_text())["step"]


class Crash(Exception):
    pass


def _crash_on_call(monkeypatch, target, name: str, call: int) -> None:
    """`target.name` raises Crash on its `call`-th call (1-based), as a kill there would."""
    original, calls = getattr(target, name), []

    def crashing(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise Crash(f"killed at {name} call {call}")
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, crashing)


@pytest.mark.parametrize("where", ["before the first rename", "between the renames",
                                   "before the old one is deleted"])
def test_a_crash_anywhere_in_swapping_best_leaves_a_complete_best(where, tmp_path,
                                                                  monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    save_best(run, _state(1.0), {"step": 2, "metric": "val/loss", "value": 0.5})
    with monkeypatch.context() as patch:
        if where == "before the old one is deleted":
            import unitaf_model.run as run_module

            _crash_on_call(patch, run_module.shutil, "rmtree", 3)  # tmp, old, then old again
        else:
            _crash_on_call(patch, Path, "rename", 1 if where.startswith("before") else 2)
        with pytest.raises(Crash):
            save_best(run, _state(2.0), {"step": 4, "metric": "val/loss", "value": 0.25})
    new = where == "before the old one is deleted"
    assert _best(run) == ((2.0, 4) if new else (1.0, 2))  # what a reader sees after the crash
    recover_run(run)  # what a restart does
    assert _best(run) == ((2.0, 4) if new else (1.0, 2))
    assert sorted(p.name for p in run.iterdir()) == [BEST]


@pytest.mark.e2e  # two short trainings
def test_a_restart_cleans_half_written_checkpoints_and_finishes_the_run(tmp_path):
    dataset = write_dummy_dataset(tmp_path / "dataset")
    run = tmp_path / "run"
    args = ["train", "--data", str(dataset), "--out", str(run), "--config",
            str(CONFIGS / "demo_stage1.yaml"), "steps=2", "val_every=1", "checkpoint_every=1",
            "warmup_steps=1", "batch_size=2", "shuffle_buffer=4", "log_every=1"]
    assert CliRunner().invoke(app, args).exit_code == 0
    (run / "step_000002").rename(run / "step_000002.tmp")  # killed while writing step 2:
    weights = run / "step_000002.tmp" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # half written, no record yet
    (run / "step_000002.tmp" / "state.json").unlink()
    (run / BEST).rename(run / "best.old")  # and one in the middle of swapping best/
    assert load_run(run).checkpoint == BEST  # a reader still finds the complete best
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert not [p.name for p in run.iterdir() if p.name.endswith((".tmp", ".old"))]
    assert (run / "step_000002" / "state.json").exists() and load_run(run).step >= 1


def test_a_training_split_with_no_usable_sample_stops_naming_why(tmp_path):
    dataset = write_dummy_dataset(tmp_path / "dataset")
    shard = dataset / "data" / "train" / "train-000000.tar"
    data = bytearray(shard.read_bytes())
    data[600] ^= 0x01
    shard.write_bytes(bytes(data))
    spec = DataSpec("whisper", "teacher.npy", "whisper", "teacher.npy", fps=30.0,
                    batch_size=2, shuffle_buffer=2, seed=0, skip_bad=True)
    stream = iter(ClipStream(Dataset.open_folder(dataset), spec, "train"))
    signal.signal(signal.SIGALRM, lambda *_: pytest.fail("the stream spun without an end"))
    signal.alarm(60)
    try:
        with pytest.raises(ValueError, match=r"train split .* has no usable sample: 0 clip\(s\) "
                                             r"read; 1 skipped as bad data \(checksum mismatch"):
            next(stream)
    finally:
        signal.alarm(0)


@pytest.mark.parametrize(("field", "value", "named"), [
    ("front_end", {"backend": "offline"}, r"front_end: missing key\(s\) field, set"),
    ("front_end", {"backend": "offline", "set": "../x", "field": "teacher.npy"},
     r"front_end.set: '../x' is not a feature set name"),
    ("front_end", {"backend": "offline", "set": "whisper", "field": "a/b"},
     r"front_end.field: 'a/b' is not a field name"),
    ("front_end", {**FRONT_END, "model": {"files": ["x"]}}, r"front_end.model.files: expected"),
    ("front_end", {**FRONT_END, "frame_rate": -1}, r"front_end.frame_rate: -1.0 must be"),
    ("dataset", [], r"dataset: expected an object"),
    ("dataset", {}, r"dataset: names neither a path, a storage URL nor a hub"),
    ("dataset", {"hub": "not a hub id"}, r"dataset.hub: 'not a hub id' is not a Hub id"),
    ("dataset", {"path": "x", "revision": "main"}, r"dataset.revision: 'main' is not a hex"),
    ("dataset", {"path": 3}, r"dataset.path: expected str"),
    ("inputs", {"backbone_set": "whisper", "backbone_field": "teacher.npy",
                "teacher_set": "Whisper!", "teacher_field": "teacher.npy"},
     r"inputs.teacher_set: 'Whisper!' is not a feature set name"),
    ("mouth_interval", {"low": 1.0, "high": 0.5}, r"mouth_interval: low 1.0 must be below"),
    ("mouth_interval", {"low": 0.1}, r"mouth_interval: missing key\(s\) high"),
    ("face_fps", 0, r"face_fps: 0.0 must be positive"),
])
def test_load_run_names_the_bad_field_of_model_json(field, value, named, tmp_path):
    run = write_random_run(tmp_path / "run", "precomputed", 384, "whisper", "teacher.npy",
                           FRONT_END)
    record = json.loads((run / "model.json").read_text())
    assert load_run(run).info.front_end == FRONT_END  # the written record loads
    record[field] = value
    (run / "model.json").write_text(json.dumps(record))
    with pytest.raises(RecordError, match=r"model\.json\." + named):
        load_run(run)


def test_a_checkpoint_rewritten_in_place_is_swapped_whole(tmp_path):
    from unitaf_model.run import checkpoints, save_checkpoint

    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    folder = tmp_path / "run" / "step_000002"
    for _ in range(2):  # the second time over an existing folder
        save_checkpoint(folder, model.state_dict(), optimizer, scheduler, 2, [])
    assert checkpoints(tmp_path / "run") == [folder]
    assert sorted(p.name for p in folder.iterdir()) == ["model.safetensors",
                                                         "state.json", "state.safetensors"]
    shutil.rmtree(tmp_path / "run")


def test_a_best_folder_without_its_record_is_refused_as_damaged(tmp_path):
    run = write_random_run(tmp_path / "run", "precomputed", 384, "whisper", "teacher.npy",
                           FRONT_END)
    save_best(run, load_weights(run / "step_000001" / "model.safetensors"),
              {"step": 1, "metric": "val/loss", "value": 0.5})
    assert load_run(run).checkpoint == BEST
    (run / BEST / "best.json").unlink()
    with pytest.raises(RecordError, match=r"best is damaged: it lacks best\.json"):
        load_run(run)
