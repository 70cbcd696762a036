"""Datasets and runs on the Hugging Face Hub, offline through a fake Hub in a temporary folder
(tests/hub_fake.py); tests/data/test_hub_real.py runs against the real Hub where it can."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hub_fake import install
from unitaf_cli.data_app import app as data_app
from unitaf_cli.main_app import app as main_app
from unitaf_data.card import card_text
from unitaf_data.dataset import Dataset
from unitaf_data.hub import (
    HubLimits,
    PushRefused,
    dataset_files,
    open_dataset,
    pull_dataset,
    push_dataset,
    upload_plan,
)
from unitaf_data.licences import feature_terms, licence_metadata, source_terms
from unitaf_data.owned import MARKER
from unitaf_data.reader import ShardError
from unitaf_data.schema import FeatureSetInfo

pytest.importorskip("espeakng_loader")
pytestmark = pytest.mark.e2e
runner = CliRunner()
CONFIGS = Path(__file__).resolve().parents[2] / "configs"
REPO, MODEL_REPO = "someone/unitaf-demo", "someone/unitaf-demo-run"
TOKEN = "hf_fake_token_for_tests"
SETS = ["units", "whisper"]
TRAIN = ["steps=3", "val_every=3", "checkpoint_every=3", "warmup_steps=1", "batch_size=2"]


@pytest.fixture(scope="module")
def source(demo_build, tmp_path_factory) -> Path:
    """A copy of the demo dataset with fitted units and the whisper and units sets."""
    from unitaf_data.extract import fit_units
    from unitaf_pipelines.extract import ExtractConfig, run_extract

    dataset = tmp_path_factory.mktemp("hub") / "dataset"
    shutil.copytree(demo_build[0].out_dir, dataset)
    fit_units(dataset, k=16, seed=0)
    run_extract(ExtractConfig(dataset_dir=dataset, feature_sets=tuple(SETS), progress=False))
    return dataset


@pytest.fixture(scope="module")
def hub(source, tmp_path_factory):
    """The fake Hub with the dataset pushed by `unitaf-data push` (and that command's
    output), for the whole module."""
    with pytest.MonkeyPatch.context() as patch:
        fake = install(patch, tmp_path_factory.mktemp("fake_hub"), TOKEN)
        result = runner.invoke(data_app, ["push", str(source), REPO,
                                          "--include-features", ",".join(SETS)])
        assert result.exit_code == 0, result.output
        fake.push_output = result.output
        yield fake


@pytest.fixture(scope="module")
def trained(hub, source, tmp_path_factory) -> dict[str, Path]:
    """Three training steps from the pulled copy, and three from the Hub id itself."""
    from unitaf_model.training.config import load_config
    from unitaf_model.training.launcher import train

    root = tmp_path_factory.mktemp("hub_runs")
    pulled = pull_dataset(REPO, root / "pulled").dataset.root
    train(load_config(CONFIGS / "demo_stage1.yaml", TRAIN, data=str(pulled),
                      out=str(root / "from_pulled")))
    result = runner.invoke(main_app, ["train", "--data", REPO, "--out", str(root / "from_hub"),
                                      "--config", str(CONFIGS / "demo_stage1.yaml"), *TRAIN])
    assert result.exit_code == 0, result.output
    return {"pulled": pulled, "from_pulled": root / "from_pulled",
            "from_hub": root / "from_hub", "commit": hub.head(REPO)}


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.glob("**/*")
            if p.is_file() and ".cache" not in p.parts}


def test_push_then_pull_round_trips_the_dataset_byte_for_byte(hub, source, tmp_path):
    declared = dataset_files(Dataset.open_folder(source), SETS)
    remote = hub.files(REPO)
    assert sorted(remote) == sorted([*declared, "README.md"])
    assert not [path for path in remote if ".build" in path or path.endswith(".tmp")]
    for path in declared:
        assert remote[path] == (source / path).read_bytes(), path
    assert remote["README.md"].decode() == card_text(Dataset.open_folder(source), SETS, REPO)

    result = runner.invoke(data_app, ["pull", REPO, "--out", str(tmp_path / "copy")])
    assert result.exit_code == 0, result.output
    assert hub.head(REPO) in result.output
    pulled = _tree(tmp_path / "copy")
    assert json.loads(pulled.pop(MARKER))["kind"] == "dataset"  # the copy is the tool's own
    assert pulled == {path: remote[path] for path in [*declared, "README.md"]}
    for text in (hub.push_output, result.output, *(b.decode("latin-1") for b in remote.values()),
                 *(b.decode("latin-1") for b in pulled.values())):
        assert TOKEN not in text


def test_the_pulled_copy_and_the_hub_id_train_alike_and_the_run_records_the_commit(
        hub, trained):
    histories = [json.loads((trained[run] / "step_000003" / "state.json").read_text())
                 ["history"] for run in ("from_pulled", "from_hub")]
    assert len(histories[0]) == 3 and histories[0] == histories[1]
    recorded = json.loads((trained["from_hub"] / "model.json").read_text())["dataset"]
    assert recorded["hub"] == REPO and recorded["revision"] == trained["commit"]
    served = {(file, commit) for repo, file, commit in hub.downloads if repo == REPO}
    for split in ("train", "val"):
        for path in (f"data/{split}/{split}-000000.tar",
                     f"features/units/{split}/{split}-000000.tar",
                     f"features/whisper/{split}/{split}-000000.tar"):
            assert (path, trained["commit"]) in served


def test_a_hub_dataset_reads_the_commit_it_was_opened_at_and_pull_checks_every_shard(
        hub, source, tmp_path):
    val_clips = sum(row["split"] == "val" for row in Dataset.open_folder(source).manifest())
    opened = open_dataset(REPO)
    pinned = opened.origin["revision"]
    shard = "data/val/val-000000.tar"
    good = hub.files(REPO)[shard]
    damaged = bytearray(good)
    damaged[len(damaged) // 2] ^= 0xFF
    hub.tamper(REPO, shard, bytes(damaged))
    try:
        assert len(list(opened.samples(opened.shards("val")))) == val_clips  # at `pinned`
        moved = open_dataset(REPO)
        assert moved.origin["revision"] != pinned
        with pytest.raises(ShardError, match="val/val-000000: checksum mismatch"):
            list(moved.samples(moved.shards("val")))
        with pytest.raises(ShardError, match="val/val-000000: checksum mismatch"):
            pull_dataset(REPO, tmp_path / "damaged")
        assert _tree(pull_dataset(REPO, tmp_path / "pinned", revision=pinned).dataset.root)
    finally:
        hub.tamper(REPO, shard, good)


def test_pull_downloads_only_the_feature_sets_asked_for(hub, source, tmp_path):
    whisper = pull_dataset(REPO, tmp_path / "whisper", features=["whisper"]).dataset
    assert whisper.feature_set_names() == ["whisper"]
    assert not (whisper.root / "features" / "units").exists()
    bare = pull_dataset(REPO, tmp_path / "bare", features=[]).dataset
    assert not (bare.root / "features").exists()
    assert bare.shards() == Dataset.open_folder(source).shards()
    with pytest.raises(ValueError, match="no complete feature set tts_latent"):
        pull_dataset(REPO, tmp_path / "other", features=["tts_latent"])


def test_dry_run_verifies_and_prints_the_plan_and_uploads_nothing(hub, source):
    commits = len(hub.commit_messages)
    result = runner.invoke(data_app, ["push", str(source), "someone/other", "--dry-run",
                                      "--include-features", "all"])
    assert result.exit_code == 0, result.output
    dataset = Dataset.open_folder(source)
    plan = upload_plan(dataset, SETS)
    total = next(line for line in result.output.splitlines() if "total" in line)
    assert str(len(plan.files)) in total.split()
    assert "data/train" in result.output and "features/units/train" in result.output
    verified = f"verified {len(dataset.manifest())} clips in {len(dataset.shards())} shards"
    assert verified in result.output and "commit(s)" in result.output
    assert len(hub.commit_messages) == commits and ("dataset", "someone/other") not in hub.repos


def test_the_upload_plan_refuses_a_dataset_over_the_hubs_limits(source):
    dataset = Dataset.open_folder(source)
    plan = upload_plan(dataset, SETS)
    biggest = max(plan.files, key=lambda f: f.bytes)
    assert upload_plan(dataset, SETS, HubLimits(files_per_repo=len(plan.files) + 1))
    with pytest.raises(PushRefused, match=f"{len(plan.files) + 1} files"):
        upload_plan(dataset, SETS, HubLimits(files_per_repo=len(plan.files)))
    with pytest.raises(PushRefused, match=r"\./ holds 4 entries"):  # 3 tables + data/
        upload_plan(dataset, [], HubLimits(entries_per_folder=3))
    with pytest.raises(PushRefused, match=f"{biggest.path} is"):
        upload_plan(dataset, SETS, HubLimits(file_bytes=biggest.bytes - 1))


def test_the_upload_plan_holds_only_declared_files_and_refuses_strays(source, tmp_path,
                                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)  # where a `pipe:touch PWNED` would write
    copy = tmp_path / "dataset"
    shutil.copytree(source, copy)
    (copy / "data" / "train" / "train-000001.tar.tmp").write_bytes(b"half written")
    plan = upload_plan(Dataset.open_folder(copy), ["whisper"])
    assert {f.path for f in plan.files} == set(dataset_files(Dataset.open_folder(copy),
                                                             ["whisper"]))
    assert not [f for f in plan.files if ".build" in f.path or "units" in f.path
                or f.path.endswith((".tmp", "README.md"))]
    hostile = copy / "data" / "train" / "a.tar::pipe:touch PWNED #.tar"
    hostile.write_bytes(b"")
    with pytest.raises(PushRefused, match="do not declare"):
        upload_plan(Dataset.open_folder(copy), ["whisper"])
    assert not (tmp_path / "PWNED").exists()


def test_a_damaged_dataset_or_a_missing_token_is_refused_before_any_upload(
        hub, source, tmp_path, monkeypatch):
    copy = tmp_path / "dataset"
    shutil.copytree(source, copy)
    commits = len(hub.commit_messages)
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(PushRefused, match="no Hugging Face token"):
        push_dataset(copy, "someone/other")
    shard = copy / "features" / "whisper" / "val" / "val-000000.tar"
    data = bytearray(shard.read_bytes())
    data[700] ^= 0x01
    shard.write_bytes(bytes(data))
    result = runner.invoke(data_app, ["push", str(copy), "someone/other", "--include-features",
                                      "whisper"])
    assert result.exit_code == 2 and "checksum mismatch" in result.output
    assert len(hub.commit_messages) == commits


def test_the_card_yaml_parses_and_datasets_loads_the_folder(hub, tmp_path):
    from datasets import load_dataset
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard

    folder = pull_dataset(REPO, tmp_path / "copy").dataset.root
    card = DatasetCard.load(folder / "README.md")
    assert card.data.license == ["apache-2.0", "mit"]
    assert sorted(MetadataConfigs.from_dataset_card_data(card.data)) == \
        ["default", "units", "whisper"]
    infos = DatasetInfosDict.from_dataset_card_data(card.data)
    assert {"flac", "face.npy", "json"} <= set(infos["default"].features)
    clips = load_dataset(str(folder), split="train", cache_dir=str(tmp_path / "cache"))
    teacher = load_dataset(str(folder), "whisper", split="train",
                           cache_dir=str(tmp_path / "cache"))
    manifest = [r for r in Dataset.open_folder(folder).manifest() if r["split"] == "train"]
    assert sorted(clips["__key__"]) == sorted(r["key"] for r in manifest)
    assert teacher["__key__"] == clips["__key__"]
    face = np.asarray(clips[0]["face.npy"])
    assert face.shape[1] == 51 and clips[0]["flac"][:4] == b"fLaC"


def test_card_licences_name_every_term_the_hub_asks_for(source, tmp_path):
    folder = source_terms("folder")
    assert licence_metadata([folder]) == {"license": "other",
                                          "license_name": "source-corpus-licence",
                                          "license_link": "LICENSE"}
    unitalker = licence_metadata([source_terms("unitalker")])
    assert unitalker["license"] == "other" and unitalker["license_link"].startswith("https://")
    info = FeatureSetInfo.from_dict(json.loads(
        (source / "features" / "whisper" / "feature.json").read_text()))
    tts = info.__class__(**{**info.__dict__, "name": "tts_latent", "backend": "indextts2",
                            "licences": {"IndexTTS2": "bilibili Model Use License",
                                         "MaskGCT semantic codec": "CC BY-NC 4.0"}})
    terms = [source_terms("beat2"), *feature_terms("tts_latent", tts)]
    dataset_yaml = licence_metadata(terms)
    assert dataset_yaml == {"license": ["cc-by-nc-4.0", "other"],
                            "license_name": "bilibili-model-use-license",
                            "license_link": "https://huggingface.co/IndexTeam/IndexTTS-2"}
    model_yaml = licence_metadata(terms, one_id=True)
    assert model_yaml["license"] == "other" and model_yaml["license_link"] == "README.md"
    assert model_yaml["license_name"] == "cc-by-nc-4.0-and-bilibili-model-use-license"

    copy = tmp_path / "dataset"
    shutil.copytree(source, copy)
    record = json.loads((copy / "unitaf.json").read_text())
    (copy / "unitaf.json").write_text(json.dumps({**record, "source": "folder"}))
    with pytest.raises(PushRefused, match="add their text as .*LICENSE"):
        upload_plan(Dataset.open_folder(copy), [])
    (copy / "LICENSE").write_text("The corpus's terms.\n")
    assert "LICENSE" in {f.path for f in upload_plan(Dataset.open_folder(copy), []).files}
    assert "license_link: LICENSE" in card_text(Dataset.open_folder(copy), [])


def test_push_run_publishes_the_run_in_one_commit_and_load_run_reads_it_back(hub, trained):
    from huggingface_hub import ModelCard

    from unitaf_model.hub import open_run

    run = trained["from_hub"]
    commits = len(hub.commit_messages)
    result = runner.invoke(main_app, ["push-run", str(run), MODEL_REPO])
    assert result.exit_code == 0, result.output
    assert len(hub.commit_messages) == commits + 2  # the repository's first, then the run
    remote = hub.files(MODEL_REPO, "model")
    assert sorted(remote) == ["README.md", "best/best.json", "best/model.safetensors",
                              "config.json", "model.json", "step_000003/model.safetensors",
                              "validation.jsonl"]  # on Whisper states: no unit centroids
    card = ModelCard(remote["README.md"].decode())
    assert card.data.datasets == [REPO] and card.data.library_name == "unitaf"
    assert card.data.license == "other" and "mit" in card.data.license_name
    assert "Whisper tiny.en" in card.text and trained["commit"] in card.text
    local, published = open_run(run), open_run(MODEL_REPO)
    inputs = np.random.default_rng(0).normal(size=(40, local.info.model.backbone_size)
                                             ).astype(np.float16)
    assert published.step == local.step and published.info == local.info
    np.testing.assert_array_equal(published.predict(inputs), local.predict(inputs))
