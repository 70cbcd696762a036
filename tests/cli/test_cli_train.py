"""`unitaf train` as a person runs it: readable progress instead of a config dump, the best
validation step reported, and a rerun that resumes, does nothing, or says what to pass."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from unitaf_cli.main_app import TrainingProgress, app
from unitaf_data.testing import write_dummy_dataset

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
FAST = ["augment_share=0",
         "steps=4", "val_every=2", "checkpoint_every=2", "warmup_steps=2", "batch_size=2",
        "shuffle_buffer=4", "log_every=2"]
runner = CliRunner()


def _train(data: Path, out: Path, *extra: str):
    return runner.invoke(app, ["train", "--data", str(data), "--out", str(out), "--config",
                               str(CONFIGS / "demo_stage1.yaml"), *FAST, *extra],
                         env={"COLUMNS": "200"})


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "tensorboard" not in p.parts}


@pytest.fixture(scope="module")
def dummy(tmp_path_factory) -> Path:
    return write_dummy_dataset(tmp_path_factory.mktemp("dummy") / "dataset")


@pytest.fixture(scope="module")
def first_run(dummy, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "stage1"
    return out, _train(dummy, out)


def test_training_logs_progress_lines_and_writes_not_prints_its_config(first_run):
    out, result = first_run
    assert result.exit_code == 0, result.output
    progress = re.findall(r"step (\d)/4: loss [\d.]+, [\d.]+ clips/s, \d\d:\d\d:\d\d left",
                          result.output)
    assert progress == ["2", "4"]  # not a terminal: a line every log_every steps
    saved = json.loads((out / "config.json").read_text())
    assert saved["steps"] == 4 and saved["shuffle_buffer"] == 4
    assert "shuffle_buffer" not in result.output and "weight_decay" not in result.output


def test_the_final_table_reports_the_best_validation_step(first_run):
    out, result = first_run
    best = json.loads((out / "best" / "best.json").read_text())
    validations = [json.loads(line) for line in (out / "validation.jsonl").read_text()
                   .splitlines()]
    assert f"best validation step: {best['step']} of 4" in result.output
    best_loss = next(v["loss"] for v in validations if v["step"] == best["step"])
    assert f"step {best['step']} (best)" in result.output
    assert f"{best_loss:.4g}" in result.output


def test_the_same_command_on_a_finished_run_does_nothing_and_exits_0(dummy, first_run):
    out, _ = first_run
    before = _files(out)
    result = _train(dummy, out)
    assert result.exit_code == 0, result.output
    assert "already trained to step 4 with this config: nothing to do" in result.output
    assert _files(out) == before


def test_another_config_on_a_run_is_refused_naming_the_difference_and_the_fix(dummy,
                                                                               first_run):
    out, _ = first_run
    before = _files(out)
    result = _train(dummy, out, "lr=0.01")
    assert result.exit_code == 2
    assert "holds a run of another config (lr 0.002 → 0.01)" in result.output
    assert "new --out, or --overwrite" in result.output
    assert _files(out) == before


def test_an_unfinished_run_resumes_with_the_same_command(dummy, first_run, tmp_path):
    whole, _ = first_run
    cut = tmp_path / "cut"
    shutil.copytree(whole, cut)
    shutil.rmtree(cut / "step_000004")  # as if killed after step 2
    result = _train(dummy, cut)
    assert result.exit_code == 0, result.output
    assert re.findall(r"step (\d)/4: loss", result.output) == ["4"]
    resumed = json.loads((cut / "step_000004" / "state.json").read_text())["history"]
    finished = json.loads((whole / "step_000004" / "state.json").read_text())["history"]
    assert [round(r["loss"], 6) for r in resumed] == [round(r["loss"], 6) for r in finished]


def test_overwrite_replaces_a_run_of_another_config(dummy, first_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(first_run[0], out)
    result = _train(dummy, out, "steps=2", "--overwrite")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("step_*")) == ["step_000002"]


def test_a_failed_training_leaves_no_run_folder_behind(tmp_path):
    out = tmp_path / "run"
    result = _train(tmp_path / "no-such-dataset", out)
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("error: ")
    assert not out.exists()


def test_a_folder_that_is_not_a_run_is_refused_not_trained_into(dummy, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = _train(dummy, tmp_path)
    assert result.exit_code == 2 and "is not a unitaf run (not made by unitaf" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_on_a_terminal_progress_is_a_bar_with_loss_rate_and_time_left():
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=120)
    with TrainingProgress(4, batch_size=2, every=2, console=terminal) as progress:
        for step in range(3, 5):  # a run resumed at step 2
            progress(step, {"loss": 0.25 * step})
    shown = screen.getvalue()
    assert "4/4" in shown and "loss 1" in shown and "clips/s" in shown
    assert "step 4/4:" not in shown  # the bar, not log lines
