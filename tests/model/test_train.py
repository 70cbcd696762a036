"""Training: pinned losses and exact resume on a small dummy dataset (fast); on the demo
dataset with the offline backends, a short training that must learn the mouth, stage III
(frozen stage II, lower expression error) and `animate` with the residual; Ray Train, configs,
and runs that load alone."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from runs import train_demo_stages
from unitaf_data.face import resample_face
from unitaf_data.testing import write_dummy_dataset
from unitaf_model.evaluation.evaluate import MEAN_FACE
from unitaf_model.run import load_run, load_weights
from unitaf_model.training.config import load_config
from unitaf_model.training.launcher import train

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
FAST = ["augment_share=0",
         "steps=4", "val_every=2", "checkpoint_every=2", "warmup_steps=2", "batch_size=2",
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
    # without the closure term: its hinge on each phone's most closed frame turns the float
    # differences of other thread counts into percent-level changes within four steps
    stage2 = train(load_config(CONFIGS / "demo_stage2.yaml", [*FAST, "closure_weight=0"],
                               data=str(dummy), out=str(tmp_path / "stage2"),
                               init=str(dummy_stage1[0])))
    print("stage I", [round(r["loss"], 5) for r in stage1],
          "stage II", [round(r["loss"], 5) for r in stage2])
    # the tolerance covers float reductions under other thread counts and CPUs
    assert [r["loss"] for r in stage1] == pytest.approx(PINNED_STAGE1, rel=2e-2)
    assert [r["loss"] for r in stage2] == pytest.approx(PINNED_STAGE2, rel=2e-2)


PINNED_STAGE1 = [1.48032, 0.91424, 0.8159, 0.67743]
PINNED_STAGE2 = [0.0676, 0.03144, 0.37995, 0.06326]  # the vertex loss on the built-in head


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
    assert face.shape == (30, 51) and loaded.info.model.backbone_size == 8  # 30 fps
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
    with pytest.raises(ValueError, match="expression_target must be clip or mean"):
        load_config(None, ["expression_target=neutral"], data="d", out="o")


def test_a_finished_run_is_reused_when_only_keys_it_never_read_or_predates_differ(
        dummy, dummy_stage1, tmp_path):
    from unitaf_model.training.config import config_differences
    from unitaf_model.training.launcher import prepare_run

    run = tmp_path / "stage1"
    shutil.copytree(dummy_stage1[0], run)
    saved = json.loads((run / "config.json").read_text())
    for key in ("expression_target", "expression_smoothing", "velocity_weight"):
        del saved[key]  # as a run saved before these keys existed
    (run / "config.json").write_text(json.dumps(saved))
    again = load_config(CONFIGS / "demo_stage1.yaml", [*FAST, "mouth_alpha=10"],
                        data=str(dummy), out=str(run))
    assert prepare_run(again) == "finished"  # stage I reads no stage-II or III key
    with pytest.raises(ValueError, match=r"another config \(lr"):
        prepare_run(dataclasses.replace(again, lr=0.5))
    stage3 = dataclasses.replace(again, stage=3, init="r", mouth_alpha=3.0)
    # smoothing came with a default of 3; runs saved before it had none (1)
    assert config_differences(saved, stage3, ignored=("out",)) == [
        "stage 1 → 3", "init '' → 'r'", "expression_smoothing '(unset)' → 3"]
    assert config_differences(saved, dataclasses.replace(stage3, expression_smoothing=1),
                              ignored=("out",)) == ["stage 1 → 3", "init '' → 'r'"]


def test_stage2_on_the_mean_expression_is_scored_on_the_train_mean_face_there(
        dummy, dummy_stage1, tmp_path):
    from unitaf_data.face import articulation_channels, expression_channels
    from unitaf_model.training.recipe import Recipe

    config = load_config(CONFIGS / "demo_stage2.yaml", [*FAST, "expression_target=mean"],
                         data=str(dummy), out=str(tmp_path / "stage2"),
                         init=str(dummy_stage1[0]))
    recipe = Recipe(config)
    recipe.setup()
    channels = list(recipe.run_info.model.channels)
    expression = [channels.index(c) for c in expression_channels(channels)]
    articulation = [channels.index(c) for c in articulation_channels(channels)]
    face = torch.rand(2, 5, len(channels))
    target = recipe._target(face)
    recipe.cleanup()
    assert torch.equal(target[..., articulation], face[..., articulation])
    assert torch.equal(target[..., expression],
                       recipe.core.template[expression].expand(2, 5, -1))
    assert not torch.equal(recipe.core.template[expression], face[0, 0, expression])


SHORT = ["augment_share=0",
         "steps=150", "val_every=150", "checkpoint_every=150", "warmup_steps=30"]


@pytest.fixture(scope="module")
def demo_stage2(demo_features, tmp_path_factory) -> Path:
    """Stages I and II of the demo configs, shortened, on the 1-minute demo dataset."""
    return train_demo_stages(demo_features, tmp_path_factory.mktemp("demo_runs"), SHORT)


@pytest.fixture(scope="module")
def demo_stage3(demo_stage2, demo_features, tmp_path_factory) -> tuple[Path, object]:
    """Stage III of the demo config, shortened, on `demo_stage2`: (run, its config)."""
    run = tmp_path_factory.mktemp("demo_stage3") / "stage3"
    config = load_config(CONFIGS / "demo_stage3.yaml", SHORT, data=str(demo_features),
                         out=str(run), init=str(demo_stage2))
    train(config)
    return run, config


def _scores(runs: list[Path], dataset: Path, split: str) -> dict[str, dict[str, float]]:
    from unitaf_data.dataset import Dataset
    from unitaf_model.evaluation.evaluate import evaluate

    evaluation = evaluate([load_run(run) for run in runs], Dataset.open_folder(dataset), split)
    return {system: {name: result.value for name, result in results.items()}
            for system, results in evaluation.scores.items()}


@pytest.mark.e2e
def test_a_short_training_on_the_demo_learns_the_mouth_well_beyond_the_mean_face(
        demo_stage2, demo_features):
    first, last = _validations(demo_stage2.parent / "stage1")[0], \
        _validations(demo_stage2.parent / "stage1")[-1]
    assert last["loss"] <= 0.5 * first["loss"]
    interval = json.loads((demo_stage2 / "model.json").read_text())["mouth_interval"]
    assert 0 < interval["low"] < interval["high"]
    found = _scores([demo_stage2], demo_features, "test")  # another speaker and emotion
    model, mean = found["stage2"], found[MEAN_FACE]
    print({name: round(model[name], 4) for name in MOUTH_MARGINS}, "mean face lve",
          mean["lve"])
    assert model["lve"] < MOUTH_MARGINS["lve"] * mean["lve"]
    assert model["mouth_l2"] < MOUTH_MARGINS["mouth_l2"] * mean["mouth_l2"]
    assert model["jaw_open_correlation"] > MOUTH_MARGINS["jaw_open_correlation"]
    assert model["bcs"] > MOUTH_MARGINS["bcs"]


# Margins for 150 + 150 steps on the 1-minute demo (one 20 s training recording), scored on
# its test recording (another speaker and emotion). Measured with these configs on the
# earlier flat demo rig: LVE 0.63× and mouth L2 0.91× the mean face's, JawOpen r 0.82, the
# paper's BCS (`bcs`, its proxy reads the blendshapes, not the rig) 0.35: 6 of 17 /p b m/
# intervals (the mean face: 0). On the built-in head the earlier frame form
# (`closure_frame_agreement`) of the same predicted curves fell from 0.59 to 0.23: the head's
# ground-truth closures all sit at one pressed level, so its 70% threshold is tighter.
MOUTH_MARGINS = {"lve": 0.75, "mouth_l2": 0.95, "jaw_open_correlation": 0.7, "bcs": 0.2}


@pytest.mark.e2e
def test_stage3_keeps_stage2_frozen_reruns_as_finished_and_lowers_the_expression_error(
        demo_stage2, demo_stage3, demo_features, tmp_path):
    from unitaf_data.face import expression_channels
    from unitaf_model.run import checkpoint_folder
    from unitaf_model.training.launcher import prepare_run
    from unitaf_model.training.recipe import Recipe

    stage3, config = demo_stage3
    assert prepare_run(config) == "finished"  # the same command again: nothing to do
    recipe = Recipe(dataclasses.replace(config, out=str(tmp_path / "modes")))
    recipe.setup()
    recipe._train_mode()
    assert recipe.core.expression.training and not recipe.core.decoder.training
    assert not any(p.requires_grad for n, p in recipe.core.named_parameters()
                   if not n.startswith("expression."))
    recipe.cleanup()
    frozen = load_weights(checkpoint_folder(demo_stage2) / "model.safetensors")
    for folder in ("best", "step_000150"):
        trained = load_weights(stage3 / folder / "model.safetensors")
        assert all(torch.equal(trained[name], tensor) for name, tensor in frozen.items())
        assert {n.split(".")[0] for n in set(trained) - set(frozen)} == {"expression"}
    loaded = load_run(stage3)
    assert loaded.info.stage == 3 and set(loaded.info.expression.channels) == set(
        expression_channels(loaded.info.model.channels))
    found = _scores([stage3, demo_stage2], demo_features, "train")
    residual, alone = found["stage3"], found["stage2"]
    print({name: (round(residual[name], 5), round(alone[name], 5))
           for name in ("expression_l2", "fdd_abs", "lve", "bcs", "bcs_rig_openness")})
    assert residual["expression_l2"] < EXPRESSION_MARGIN * alone["expression_l2"]
    for name in ("jaw_open_correlation", "bcs_rig_openness"):  # articulation untouched
        assert residual[name] == alone[name], name
    # the paper's lip proxy reads all 51 channels, the expression channels too
    assert abs(residual["bcs"] - alone["bcs"]) <= 0.05
    # MouthSmile*, MouthFrown* and MouthDimple* are expression channels: they also move the
    # lips, and count in the mouth jitter
    assert residual["lve"] < 1.05 * alone["lve"]
    assert residual["jitter_mouth"] < 1.1 * alone["jitter_mouth"]


# 150 steps on the training recording: measured 0.54× stage II's expression error.
EXPRESSION_MARGIN = 0.8


@pytest.mark.e2e
def test_animate_applies_the_residual_of_the_requested_emotion_on_expression_channels_only(
        demo_stage2, demo_stage3, demo_features):
    from unitaf_data.dataset import Dataset
    from unitaf_model.synthesis.animate import AudioFrontEnd, animate

    run = load_run(demo_stage3[0])
    dataset = Dataset.open_folder(demo_features)
    sample = next(dataset.samples(dataset.shards("test"), run.sidecars))
    features = AudioFrontEnd(run).features(sample.audio())
    for name, fields in run.sidecars.items():
        for field_name in fields:  # audio alone gives exactly what extraction stored
            np.testing.assert_array_equal(features[name][field_name],
                                          sample.features[name][field_name])
    with pytest.raises(ValueError, match="conditioned on the emotion: give one of"):
        animate(run, AudioFrontEnd(run), sample.audio(), sample.meta.speaker)
    face = animate(run, AudioFrontEnd(run), sample.audio(), sample.meta.speaker,
                   emotion=sample.meta.emotion)
    without = load_run(demo_stage2).predict_features(features, sample.meta.speaker)
    moved = np.abs(face - resample_face(without, run.info.fps, run.info.face_fps,
                                        len(face))).max(0)
    channels = run.info.model.channels
    assert {channels[i] for i in np.flatnonzero(moved > 1e-6)} <= set(
        run.info.expression.channels)
    assert moved.max() > 1e-4


@pytest.mark.e2e
def test_unitaf_infer_espeak_moves_the_mouth_with_its_own_speech(demo_stage2, tmp_path):
    """The offline cascade on a sentence the model never heard, against the demo corpus's
    face for the same eSpeak phonemes (the function that made the training faces)."""
    from typer.testing import CliRunner

    from unitaf_cli.main_app import app
    from unitaf_data.espeak import Synthesizer
    from unitaf_data.sources.demo import face_from_phonemes, held_out_sentences, speaker_prosody
    from unitaf_model.evaluation.metrics import av_offset, jaw_open_correlation

    text, out = held_out_sentences("test")[0], tmp_path / "out"
    result = CliRunner().invoke(app, ["infer", "--run", str(demo_stage2), "--tts", "espeak",
                                      "--text", text, "--voice", "spk01", "--out", str(out)])
    assert result.exit_code == 0, result.output
    audio, rate = sf.read(out / "speech.wav", dtype="float32")
    face = np.load(out / "speech.npy")
    fps = load_run(demo_stage2).info.face_fps
    assert len(face) == round(len(audio) / rate * fps)
    spoken = Synthesizer.shared().speak(text, speaker_prosody("spk01", "neutral"))
    assert abs(len(spoken.audio) - len(audio)) < rate / fps  # eSpeak: a few samples apart
    phonemes = [(p.label, p.start, p.end) for p in spoken.phonemes]
    truth = face_from_phonemes(phonemes, len(face), fps, "neutral", np.random.default_rng(0))
    run = load_run(demo_stage2)
    channels = run.info.model.channels
    # The 1-minute demo trains on one ~15 s recording of spk01 (corpus v2 holds out a val,
    # a test and a test-speaker recording): r measured 0.67 here for this unseen sentence
    # with spk01's voice (0.58 with spk02's, a voice it never heard), 0.72 on 1.5 minutes;
    # 0.57 since the demo config's closure term (652c2b0), which in the first ~150 steps
    # pulls the mouth toward closing on /p b m/ before it follows the jaw
    assert jaw_open_correlation([face], [truth], channels).value > 0.5
    lags = [av_offset(audio, rate, run.rig.mouth_openness(f), fps).lag_frames
            for f in (face, truth)]
    assert abs(lags[0] - lags[1]) <= 1, lags


@pytest.mark.e2e
def test_two_worker_ray_train_run_completes(dummy, tmp_path):
    from unitaf_pipelines.runtime import init_ray

    init_ray()
    run = tmp_path / "ray"
    history = train(load_config(CONFIGS / "demo_stage1.yaml",
                                [*FAST, "steps=2", "num_workers=2"],
                                data=str(dummy), out=str(run)))
    assert len(history) == 2 and (run / "step_000002" / "model.safetensors").exists()
    assert [v["step"] for v in _validations(run)] == [0, 2]


def test_a_hub_dataset_id_offline_fails_with_a_clear_message(hub_offline):
    from unitaf_data.hub import open_dataset

    with pytest.raises(FileNotFoundError, match="Hugging Face Hub"):
        open_dataset("some-org/unitaf-demo")
