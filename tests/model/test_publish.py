"""What a push publishes: a run's weights, records and reports, its media (eval videos with
test clips' audio) only when asked and then under the dataset's licence stated in the card;
new repositories private unless --public; restricted (non-commercial or unknown) terms said
by the card and by the command. Offline, through the fake Hub (tests/hub_fake.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub_fake import install
from runs import write_random_run
from unitaf_cli.data_app import app as data_app
from unitaf_cli.main_app import app as main_app
from unitaf_data.card import card_text
from unitaf_data.dataset import Dataset
from unitaf_data.reader import sha256_of
from unitaf_data.testing import write_dummy_dataset

runner = CliRunner()
FRONT_END = {"backend": "offline", "set": "whisper", "field": "teacher.npy",
             "model": {"name": "tiny.en"}}
REPORT = ["eval/test/eval.json", "eval/test/eval.md", "eval/test/clip_curves.png"]
MEDIA = ["eval/test/videos/demo-spk0-r0-0000.mp4", "eval/test/videos/demo-spk0-r0-0001.mp4"]


def _dataset(root: Path, source: str) -> Path:
    dataset = write_dummy_dataset(root / f"{source}-dataset")
    info = json.loads((dataset / "unitaf.json").read_text())
    info["source"] = source
    (dataset / "unitaf.json").write_text(json.dumps(info))
    return dataset


def _run(root: Path, dataset: Path) -> Path:
    """A run trained (as its records say) on `dataset`, with an eval report and videos, and
    a stray recording nobody asked to publish."""
    run = write_random_run(root / "run", "precomputed", 384, "whisper", "teacher.npy",
                           FRONT_END)
    record = json.loads((run / "model.json").read_text())
    record["dataset"] = {"path": str(dataset), "info_sha256": sha256_of(dataset / "unitaf.json")}
    (run / "model.json").write_text(json.dumps(record))
    for path in [*REPORT, *MEDIA, "eval/test/speech.wav"]:
        (run / path).parent.mkdir(parents=True, exist_ok=True)
        (run / path).write_bytes(b"{}" if path.endswith(".json") else b"\x00media")
    return run


@pytest.fixture
def beat2(tmp_path) -> tuple[Path, Path]:
    dataset = _dataset(tmp_path, "beat2")
    return dataset, _run(tmp_path, dataset)


def _listed(output: str) -> list[str]:
    """The file column of the plan table."""
    return [line.split()[1] for line in output.splitlines()
            if line.startswith("│") and line.split()[1] not in ("file",)]


def test_a_dry_run_lists_every_file_and_no_media_unless_asked(beat2, monkeypatch):
    _, run = beat2
    monkeypatch.delenv("HF_TOKEN", raising=False)  # a dry run needs no token
    result = runner.invoke(main_app, ["push-run", str(run), "me/run", "--dry-run"],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    listed = _listed(result.output)
    assert sorted(listed) == sorted(["model.json", "config.json", "step_000001/model.safetensors",
                                     *REPORT, "README.md"])
    assert "0 media" in result.output and "left out without --include-media" in result.output
    assert "created private" in result.output
    assert "restricted terms: BEAT2 corpus: CC BY-NC 4.0 (non-commercial" in result.output

    media = runner.invoke(main_app, ["push-run", str(run), "me/run", "--dry-run",
                                     "--include-media"], env={"COLUMNS": "200"})
    assert media.exit_code == 0, media.output
    assert sorted(_listed(media.output)) == sorted([*listed, *MEDIA])
    assert "eval/test/speech.wav" not in media.output  # only the eval videos are media it sends


def test_push_run_is_private_unless_public_and_states_the_media_licence(beat2, tmp_path,
                                                                        monkeypatch):
    from huggingface_hub import ModelCard

    _, run = beat2
    hub = install(monkeypatch, tmp_path / "hub")
    assert runner.invoke(main_app, ["push-run", str(run), "me/private"]).exit_code == 0
    assert hub.repos[("model", "me/private")].private
    card = ModelCard(hub.files("me/private", "model")["README.md"].decode())
    assert "## Media" not in card.text and "Restricted terms" in card.text
    assert not [p for p in hub.files("me/private", "model") if p.endswith((".mp4", ".wav"))]

    result = runner.invoke(main_app, ["push-run", str(run), "me/public", "--public",
                                      "--include-media"])
    assert result.exit_code == 0, result.output
    assert not hub.repos[("model", "me/public")].private
    remote = hub.files("me/public", "model")
    assert sorted(p for p in remote if p.endswith(".mp4")) == sorted(MEDIA)
    assert "eval/test/speech.wav" not in remote
    text = ModelCard(remote["README.md"].decode()).text
    assert "## Media" in text and "BEAT2 corpus's data, under its licence, **CC BY-NC 4.0** " \
                                  "(non-commercial use only)" in " ".join(text.split())


@pytest.mark.parametrize(("source", "restricted"), [
    ("demo", None), ("beat2", "BEAT2 corpus: CC BY-NC 4.0 (non-commercial use only)"),
    ("folder", "source corpus: the corpus's own licence (licence unknown to unitaf")])
def test_a_dataset_push_is_private_and_names_restricted_terms(source, restricted, tmp_path,
                                                              monkeypatch):
    dataset = _dataset(tmp_path, source)
    (dataset / "LICENSE").write_text("the corpus's terms\n")
    (dataset / "README.md").write_text(card_text(Dataset.open_folder(dataset)))
    hub = install(monkeypatch, tmp_path / "hub")
    result = runner.invoke(data_app, ["push", str(dataset), "me/data"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert hub.repos[("dataset", "me/data")].private and "created private" in result.output
    card = hub.files("me/data")["README.md"].decode()
    if restricted is None:
        assert "restricted terms" not in result.output and "Restricted terms" not in card
    else:
        assert f"restricted terms: {restricted}" in result.output
        assert "**Restricted terms.** This dataset derives from" in card
        assert restricted in " ".join(card.split())
    public = runner.invoke(data_app, ["push", str(dataset), "me/open", "--public"])
    assert public.exit_code == 0 and not hub.repos[("dataset", "me/open")].private
    assert "created PUBLIC" in public.output
    shutil.rmtree(tmp_path / "hub")


def test_a_push_deletes_only_stale_shards_never_other_files_in_the_repository(tmp_path,
                                                                             monkeypatch):
    from huggingface_hub import CommitOperationAdd

    dataset = _dataset(tmp_path, "demo")
    hub = install(monkeypatch, tmp_path / "hub")
    api = hub  # what the toolkit calls as HfApi()
    api.create_repo("me/data", repo_type="dataset", private=True)
    kept = {"data/notes.txt": b"mine", "features/mine/table.csv": b"a,b",
            "data/train/my-archive.tar": b"not a unitaf shard"}
    api.create_commit("me/data", [CommitOperationAdd(path, data) for path, data in
                                  [*kept.items(), ("data/train/train-000099.tar", b"stale")]],
                      commit_message="someone's files", repo_type="dataset")
    result = runner.invoke(data_app, ["push", str(dataset), "me/data"])
    assert result.exit_code == 0, result.output
    remote = hub.files("me/data")
    assert {path: remote.get(path) for path in kept} == kept
    assert "data/train/train-000099.tar" not in remote and "data/train/train-000000.tar" in remote
