"""Nothing the toolkit did not make is deleted or written over: every command that removes or
replaces a folder (build, extract-features, fit-units, train, eval, animate, infer, pull) is
given someone's model folder, an unrelated folder and a symbolic link to elsewhere, with and
without --overwrite; each is refused with what was found and left byte-identical."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from runs import write_random_run
from unitaf_cli.data_app import app as data_app
from unitaf_cli.main_app import app as main_app
from unitaf_data import owned
from unitaf_data.dataset import DatasetLayout
from unitaf_data.testing import write_dummy_dataset

runner = CliRunner()
CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# The model folder in the fast lane; the other two kinds, per command, in the slow one (the
# unit tests below cover them in the fast lane).
FOREIGN = ("model_folder", pytest.param("unrelated_folder", marks=pytest.mark.e2e),
           pytest.param("symlink", marks=pytest.mark.e2e))


def _make_foreign(kind: str, path: Path, elsewhere: Path) -> None:
    """Someone's Hugging Face model folder, an unrelated folder, or a link to a folder
    elsewhere (which holds a config.json too)."""
    if kind == "model_folder":
        path.mkdir(parents=True)
        (path / "config.json").write_text('{"model_type": "wav2vec2"}')
        (path / "pytorch_model.bin").write_bytes(b"\x80\x02weights")
        (path / "notes.txt").write_text("my notes")
    elif kind == "unrelated_folder":
        (path / "photos").mkdir(parents=True)
        (path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8cat")
        (path / "todo.txt").write_text("buy milk")
    else:
        elsewhere.mkdir(parents=True, exist_ok=True)
        (elsewhere / "config.json").write_text("{}")
        (elsewhere / "keep.txt").write_text("keep me")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(elsewhere, target_is_directory=True)


def _snapshot(*roots: Path) -> dict[str, object]:
    found: dict[str, object] = {}
    for root in roots:
        if root.is_symlink():
            found[str(root)] = ("link", str(root.readlink()))
            continue
        for path in sorted(root.rglob("*")):
            found[str(path)] = ("link", str(path.readlink())) if path.is_symlink() else \
                path.read_bytes() if path.is_file() else "dir"
    return found


@pytest.fixture(scope="module")
def dummy(tmp_path_factory) -> Path:
    return write_dummy_dataset(tmp_path_factory.mktemp("owned") / "dataset")


@pytest.fixture(scope="module")
def random_run(tmp_path_factory) -> Path:
    front_end = {"backend": "offline", "set": "whisper", "field": "teacher.npy",
                 "model": {"name": "tiny.en"}}
    return write_random_run(tmp_path_factory.mktemp("owned_run") / "run", "precomputed", 384,
                            "whisper", "teacher.npy", front_end)


def _refused(app, args: list[str], target: Path, elsewhere: Path) -> None:
    before = _snapshot(target, elsewhere)
    result = runner.invoke(app, args, env={"COLUMNS": "250"})
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("error: ") and str(target) in line, result.output
    assert "not made by unitaf" in line or "symbolic link" in line, line
    assert _snapshot(target, elsewhere) == before


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
@pytest.mark.parametrize("foreign", FOREIGN)
def test_build_refuses_a_foreign_out(foreign, overwrite, tmp_path):
    out = tmp_path / "out"
    _make_foreign(foreign, out, tmp_path / "elsewhere")
    _refused(data_app, ["build", "--source", "demo", "--out", str(out), "--demo-minutes",
                        "0.2", *(["--overwrite"] if overwrite else [])],
             out, tmp_path / "elsewhere")


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
@pytest.mark.parametrize("foreign", FOREIGN)
def test_train_refuses_a_foreign_out(dummy, foreign, overwrite, tmp_path):
    out = tmp_path / "out"
    _make_foreign(foreign, out, tmp_path / "elsewhere")
    _refused(main_app, ["train", "--data", str(dummy), "--out", str(out), "--config",
                        str(CONFIGS / "demo_stage1.yaml"), "steps=1",
                        *(["--overwrite"] if overwrite else [])], out, tmp_path / "elsewhere")


@pytest.mark.parametrize("command", ["extract-features", "fit-units"])
@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
@pytest.mark.parametrize("foreign", FOREIGN)
def test_extraction_and_fitting_refuse_a_foreign_feature_folder(dummy, command, foreign,
                                                                 overwrite, tmp_path):
    dataset = tmp_path / "dataset"
    shutil.copytree(dummy, dataset)
    name = "units" if command == "fit-units" else "utterance"
    folder = DatasetLayout(dataset).feature_dir(name)
    shutil.rmtree(folder, ignore_errors=True)
    _make_foreign(foreign, folder, tmp_path / "elsewhere")
    args = [command, str(dataset), *(["--features", name] if command != "fit-units" else
                                     ["--k", "4"]), *(["--overwrite"] if overwrite else [])]
    _refused(data_app, args, folder, tmp_path / "elsewhere")


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
@pytest.mark.parametrize("foreign", FOREIGN)
def test_pull_refuses_a_foreign_out_before_any_download(foreign, overwrite, tmp_path,
                                                        hub_offline):
    out = tmp_path / "out"
    _make_foreign(foreign, out, tmp_path / "elsewhere")
    before = _snapshot(out, tmp_path / "elsewhere")
    result = runner.invoke(data_app, ["pull", "someone/dataset", "--out", str(out),
                                      *(["--overwrite"] if overwrite else [])])
    assert result.exit_code == 2 and str(out) in result.output, result.output
    assert "Hub" not in result.output  # refused before the Hub was asked anything
    assert _snapshot(out, tmp_path / "elsewhere") == before


@pytest.mark.parametrize("foreign", FOREIGN)
def test_eval_refuses_a_foreign_report_folder(dummy, random_run, foreign, tmp_path):
    out = tmp_path / "report"
    _make_foreign(foreign, out, tmp_path / "elsewhere")
    _refused(main_app, ["eval", str(random_run), "--data", str(dummy), "--out", str(out)],
             out, tmp_path / "elsewhere")


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
@pytest.mark.parametrize("foreign", FOREIGN)
def test_animate_and_infer_refuse_a_foreign_out(random_run, foreign, overwrite, tmp_path):
    speech = tmp_path / "speech.wav"
    sf.write(speech, np.zeros(1600, np.float32), 16000)
    flag = ["--overwrite"] if overwrite else []
    for command in (["animate", "--run", str(random_run), "--audio", str(speech), *flag],
                    ["infer", "--run", str(random_run), "--tts", "espeak", "--text", "hi",
                     *flag]):
        out = tmp_path / command[0]
        _make_foreign(foreign, out, tmp_path / "elsewhere")
        _refused(main_app, [*command, "--out", str(out)], out, tmp_path / "elsewhere")


def test_outputs_the_tool_made_are_replaced_only_with_overwrite(tmp_path):
    out = owned.claim_outputs(tmp_path / "out", ["a.npy"])
    assert owned.marker_kind(out) == "outputs"
    (out / "a.npy").write_bytes(b"earlier output")
    with pytest.raises(owned.ForeignFolder, match="already holds a.npy: pass --overwrite"):
        owned.claim_outputs(out, ["a.npy", "b.npy"])
    assert owned.claim_outputs(out, ["a.npy"], overwrite=True) == out
    (out / "c.npy").symlink_to(tmp_path / "elsewhere.npy")
    with pytest.raises(owned.ForeignFolder, match="symbolic link"):
        owned.claim_outputs(out, ["c.npy"], overwrite=True)


@pytest.mark.parametrize("foreign", ["model_folder", "unrelated_folder", "symlink"])
def test_a_foreign_folder_is_never_removed_or_claimed(foreign, tmp_path):
    folder = tmp_path / "folder"
    _make_foreign(foreign, folder, tmp_path / "elsewhere")
    before = _snapshot(folder, tmp_path / "elsewhere")
    for kind in owned.KINDS:
        for act in (owned.remove, owned.claim, owned.check_owned):
            with pytest.raises(owned.ForeignFolder, match="not made by unitaf|symbolic link"):
                act(folder, kind)
    with pytest.raises(owned.ForeignFolder):
        owned.remove(folder, "dataset", keep_folder=True)
    assert _snapshot(folder, tmp_path / "elsewhere") == before


def test_only_a_marked_folder_of_the_right_kind_or_an_empty_one_is_removed(tmp_path):
    run = owned.claim(tmp_path / "run", "run")
    marker = json.loads((run / owned.MARKER).read_text())
    assert marker["kind"] == "run" and marker["marker_version"] == 1 and marker["tool_version"]
    (run / "step_000001").mkdir()
    with pytest.raises(owned.ForeignFolder, match=r"not a unitaf dataset \(it is a unitaf run"):
        owned.remove(run, "dataset")
    owned.remove(run, "run")
    assert not run.exists()
    (tmp_path / "empty").mkdir()
    owned.remove(tmp_path / "empty", "dataset")
    assert not (tmp_path / "empty").exists()
    owned.remove(tmp_path / "never-made", "run")  # nothing there: nothing to do
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(owned.ForeignFolder, match="not made by unitaf.*it is a file"):
        owned.claim(tmp_path / "file.txt", "run")


def test_folders_from_before_markers_are_recognised_by_their_own_records(dummy, random_run,
                                                                        tmp_path):
    assert not (dummy / owned.MARKER).exists() and not (random_run / owned.MARKER).exists()
    assert owned.marker_kind(dummy) == "dataset"
    assert owned.marker_kind(DatasetLayout(dummy).feature_dir("whisper")) == "feature_set"
    assert owned.marker_kind(random_run) == "run"
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "unitaf.json").write_text('{"schema_version": 1}')  # not a valid record
    (fake / "model.json").write_text('{"model_type": "bert"}')
    (fake / "config.json").write_text("{}")
    assert owned.marker_kind(fake) is None
    assert "holds 3 entries: config.json, model.json, unitaf.json" in owned.describe(fake)


def test_the_marker_is_never_published_with_a_dataset(dummy, tmp_path):
    from unitaf_data.dataset import Dataset
    from unitaf_data.hub import dataset_files, upload_plan

    dataset = tmp_path / "dataset"
    shutil.copytree(dummy, dataset)
    owned.claim(tmp_path / "new", "dataset")  # a marker file, copied into the dataset's folders
    for folder in (dataset, DatasetLayout(dataset).feature_dir("units")):
        shutil.copy(tmp_path / "new" / owned.MARKER, folder / owned.MARKER)
    opened = Dataset.open_folder(dataset)
    assert not [f for f in dataset_files(opened, ["units"]) if owned.MARKER in f]
    assert not [f for f in upload_plan(opened, ["units"]).files if owned.MARKER in f.path]
