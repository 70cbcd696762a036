"""`unitaf-data build` and the README main command through Ray, as a new user runs them:
rejection reasons on the screen, `-v` one line per rejected item, no half-made folder after
a failure, and every step of the main command safe to run twice."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from unitaf_cli.data_app import app as data_app
from unitaf_cli.main_app import app as main_app
from unitaf_data.dataset import Dataset

pytestmark = pytest.mark.e2e
runner = CliRunner()
CONFIGS = Path(__file__).resolve().parents[2] / "configs"
FAST = ["augment_share=0",
         "steps=4", "val_every=2", "checkpoint_every=4", "warmup_steps=2", "batch_size=2",
        "shuffle_buffer=4"]


@pytest.fixture
def npy_corpus(tmp_path) -> Path:
    """Two speakers' recordings with .npy faces: without --channel-names, all rejected."""
    corpus = tmp_path / "corpus"
    for speaker in ("alice", "bob"):
        (corpus / speaker).mkdir(parents=True)
        tone = 0.1 * np.sin(np.arange(32_000) * 2 * np.pi * 220 / 16_000)
        sf.write(corpus / speaker / "take1.wav", tone.astype(np.float32), 16_000)
        np.save(corpus / speaker / "take1.npy", np.zeros((60, 7), np.float32))
    return corpus


def _build_folder(corpus: Path, out: Path, *extra: str):
    return runner.invoke(data_app, ["build", "--source", "folder", "--input", str(corpus),
                                    "--out", str(out), "--face-fps", "30", *extra],
                         env={"COLUMNS": "250"})


def test_an_all_rejected_build_prints_the_reasons_and_leaves_no_folder(npy_corpus, tmp_path):
    out = tmp_path / "dataset"
    result = _build_folder(npy_corpus, out)
    assert result.exit_code == 2
    assert re.search(r"recording\s*│\s*unreadable_face\s*│\s*2", result.output), result.output
    items = [line.strip() for line in result.output.splitlines()
             if line.startswith("  recording ")]
    assert [item.split(":")[0] for item in items] == [
        "recording folder-alice-alice_take1", "recording folder-bob-bob_take1"]
    assert all("unreadable_face" in item and ".npy faces need --channel-names" in item
               for item in items)
    assert result.output.strip().splitlines()[-1] == (
        "error: no clip survived: 2 of 2 recordings and 0 clips were rejected, most often "
        "recording unreadable_face (2)")
    assert "rejected recording" not in result.output  # the per-item lines are for -v
    assert not out.exists()  # so that the fixed command does not trip over it


def test_verbose_prints_one_line_per_rejected_item_from_the_driver(npy_corpus, tmp_path):
    result = _build_folder(npy_corpus, tmp_path / "dataset", "-v")
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if "rejected recording" in line]
    assert len(lines) == 2, result.output
    assert all("unreadable_face" in line and "--channel-names" in line for line in lines)


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and ".build" not in p.parts}


def test_every_step_of_the_readme_main_command_runs_twice(demo_copy, tmp_path):
    """The main command's steps on a dataset they already made: build resumes into the same
    bytes, fit-units and extract-features have nothing to do, and a finished training
    says so; each exits 0."""
    before = _tree(demo_copy)
    steps = [
        (data_app, ["build", "--source", "demo", "--out", str(demo_copy), "--demo-minutes",
                    "1", "--seed", "3"]),
        (data_app, ["fit-units", str(demo_copy), "--k", "32"]),
        (data_app, ["extract-features", str(demo_copy)]),
    ]
    for app, args in steps:
        result = runner.invoke(app, args, env={"COLUMNS": "250"})
        assert result.exit_code == 0, (args, result.output)
    assert "already fitted with k=32, seed=0: nothing to do" in runner.invoke(
        data_app, ["fit-units", str(demo_copy), "--k", "32"]).output
    assert _tree(demo_copy) == before
    Dataset.open_folder(demo_copy).check_sidecars(["units", "whisper", "utterance"],
                                                  ["train", "val", "test"])
    assert "config_name: units" in (demo_copy / "README.md").read_text()

    stage1, stage2, stage3 = tmp_path / "stage1", tmp_path / "stage2", tmp_path / "stage3"
    train = [["train", "--data", str(demo_copy), "--out", str(stage1), "--config",
              str(CONFIGS / "demo_stage1.yaml"), *FAST],
             ["train", "--data", str(demo_copy), "--out", str(stage2), "--init", str(stage1),
              "--config", str(CONFIGS / "demo_stage2.yaml"), *FAST],
             ["train", "--data", str(demo_copy), "--out", str(stage3), "--init", str(stage2),
              "--config", str(CONFIGS / "demo_stage3.yaml"), *FAST]]
    for args in train:
        first = runner.invoke(main_app, args, env={"COLUMNS": "250"})
        assert first.exit_code == 0, first.output
        again = runner.invoke(main_app, args, env={"COLUMNS": "250"})
        assert again.exit_code == 0, again.output
        assert "nothing to do" in again.output


def test_a_local_ray_keeps_token_authentication_without_printing_its_notice(tmp_path):
    """Ray turns token authentication on for every new local cluster and says so on each
    start; the tool keeps the authentication and drops only that notice."""
    script = ("import os\n"
              "from unitaf_pipelines.runtime import init_ray\n"
              "init_ray(num_cpus=1)\n"
              "print('auth mode:', os.environ.get('RAY_AUTH_MODE'))\n")
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "auth mode: token" in done.stdout
    assert "Token authentication is enabled" not in done.stderr + done.stdout
