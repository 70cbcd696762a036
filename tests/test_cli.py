from typer.testing import CliRunner

from unitaf_cli.data_app import app as data_app
from unitaf_cli.main_app import app as main_app

runner = CliRunner()


def test_help_lists_only_implemented_commands():
    result = runner.invoke(data_app, ["--help"])
    assert result.exit_code == 0
    assert "build" in result.output and "inspect" in result.output
    assert runner.invoke(main_app, ["--help"]).exit_code == 0


def test_env_reports_the_offline_asr_model():
    result = runner.invoke(main_app, ["env"])
    assert result.exit_code == 0 and "offline ASR model" in result.output


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
