"""A programming error is never counted as bad input: the build's load stage rejects what a
damaged file raises and raises anything else; the commands print a bug as an internal error
(exit code 3, the traceback with -v), not as an unreadable sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from unitaf_cli.data_app import app
from unitaf_data import stages
from unitaf_data.schema import RecordingRef, Rejection
from unitaf_data.sources import InputError, demo
from unitaf_data.testing import write_dummy_dataset

runner = CliRunner()


def _ref(tmp_path: Path) -> RecordingRef:
    sf.write(tmp_path / "x.wav", np.zeros(16000, np.float32), 16000)
    return RecordingRef("demo", "s", "x", "train", str(tmp_path / "x.wav"),
                        str(tmp_path / "x.face.npy"),
                        extra={"timeline_path": str(tmp_path / "x.timeline.json")})


@pytest.mark.parametrize(("raised", "reason"), [
    (InputError("unreadable_face", "x.face.npy: bad"), "unreadable_face"),
    (ValueError("cannot reshape array"), "unreadable"),
    (EOFError("no data left in file"), "unreadable"),
    (sf.LibsndfileError(1, "Error opening"), "unreadable"),
])
def test_what_a_damaged_file_raises_is_a_rejection(raised, reason, tmp_path, monkeypatch):
    def load(ref):
        raise raised

    monkeypatch.setattr(demo, "load", load)
    result = stages.load_recording(_ref(tmp_path))
    assert isinstance(result, Rejection) and result.reason == reason


@pytest.mark.parametrize("bug", [TypeError, AttributeError, NameError, IndexError, KeyError,
                                 ZeroDivisionError, AssertionError, NotImplementedError])
def test_a_bug_in_a_source_is_raised_not_counted_as_unreadable(bug, tmp_path, monkeypatch):
    def load(ref):
        raise bug("a bug in the loader")

    monkeypatch.setattr(demo, "load", load)
    with pytest.raises(bug, match="a bug in the loader"):
        stages.load_recording(_ref(tmp_path))


def test_a_bug_in_decoding_fails_the_command_instead_of_reporting_unreadable_audio(
        tmp_path, monkeypatch):
    dataset = write_dummy_dataset(tmp_path / "dataset")
    import unitaf_data.audio

    def decode_flac(data):
        raise TypeError("decode_flac() got an unexpected keyword argument")

    monkeypatch.setattr(unitaf_data.audio, "decode_flac", decode_flac)
    result = runner.invoke(app, ["verify", str(dataset)], env={"COLUMNS": "250"})
    assert result.exit_code == 3, result.output
    assert "unreadable" not in result.output and "damaged" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("internal error: TypeError: decode_flac() got an unexpected")
    assert "a bug in unitaf" in last and "-v shows the traceback" in last
    verbose = runner.invoke(app, ["verify", str(dataset), "-v"], env={"COLUMNS": "250"})
    assert verbose.exit_code == 3 and "Traceback" in verbose.output
    assert "in decode_flac" in verbose.output


LOST_PROCESS = {"NodeDiedError": ("the node at 10.0.0.7 died",),
                "ActorUnavailableError": ("its node died", None),
                "ActorDiedError": (), "WorkerCrashedError": ()}


@pytest.mark.parametrize("lost", sorted(LOST_PROCESS))
def test_a_node_lost_mid_command_is_a_rerun_message_not_a_bug(lost, tmp_path, monkeypatch):
    import ray.exceptions

    import unitaf_data.audio

    dataset = write_dummy_dataset(tmp_path / "dataset")

    def decode_flac(data):
        raise getattr(ray.exceptions, lost)(*LOST_PROCESS[lost])

    monkeypatch.setattr(unitaf_data.audio, "decode_flac", decode_flac)
    result = runner.invoke(app, ["verify", str(dataset)], env={"COLUMNS": "250"})
    assert result.exit_code == 2, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f"error: the cluster lost a node or worker mid-run ({lost}")
    assert last.endswith("rerun the same command to resume") and "bug" not in last
