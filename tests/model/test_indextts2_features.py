"""The `indextts2` backend with random-weight models of the real classes and file formats."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys

import numpy as np
import pytest
import torch
import yaml
from datasets import load_dataset

from indextts2_models import write_random_indextts2
from reference import all_samples
from unitaf_data.dataset import Dataset
from unitaf_data.extract import clip_inputs
from unitaf_data.features import ClipInput, ExtractSettings, make_backend
from unitaf_data.features.indextts2 import (
    INDEXTTS2_SETS,
    TAIL_SAMPLES,
    import_upstream,
    load_gpt_layer,
    load_semantic_model,
    locate_files,
    semantic_frames,
)
from unitaf_model.training.config import load_config
from unitaf_model.training.launcher import train
from unitaf_pipelines.extract import ExtractConfig, run_extract

pytestmark = [pytest.mark.e2e,  # random-weight model stacks: the slow lane
              pytest.mark.skipif(importlib.util.find_spec("indextts") is None,
                                 reason="pip install --no-deps indextts2-inference==2.1.1")]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    return write_random_indextts2(tmp_path_factory.mktemp("indextts2"), size="tiny")


@pytest.fixture(scope="module")
def backend(models):
    settings = ExtractSettings(dataset_dir=models["indextts2_dir"],
                               **{k: str(v) for k, v in models.items()})
    return make_backend("indextts2", list(INDEXTTS2_SETS), settings)


def _speech_clips(demo_build, count: int = 3) -> list[ClipInput]:
    """The `count` shortest demo clips, of different lengths."""
    pytest.importorskip("espeakng_loader")
    config, _ = demo_build
    dataset = Dataset.open_folder(config.out_dir)
    clips = clip_inputs(dataset, dataset.shards("train")[0])
    by_length = {len(c.audio): c for c in sorted(clips, key=lambda c: c.key)}
    return [by_length[n] for n in sorted(by_length)[:count]]


def test_w2v_bert_is_cut_after_layer_17_with_layer_17_unchanged(models):
    from transformers import Wav2Vec2BertModel

    extractor, cut = load_semantic_model(models["w2v_bert"], "cpu")
    full = Wav2Vec2BertModel.from_pretrained(models["w2v_bert"]).eval()
    inputs = extractor([np.random.default_rng(0).standard_normal(16_000).astype(np.float32)],
                       sampling_rate=16_000, return_tensors="pt")
    with torch.inference_mode():
        expected = full(**inputs, output_hidden_states=True).hidden_states[17]
        got = cut(**inputs).last_hidden_state
    assert len(cut.encoder.layers) == 17 < len(full.encoder.layers)
    torch.testing.assert_close(got, expected)


def test_one_clip_matches_indextts2s_own_inference_calls(backend, models, demo_build):
    """What IndexTTS2's inference code computes for a reference clip: `get_emb` (hidden
    state 17 of the full w2v-BERT, normalised by the stats), conditioning with its length
    argument (the feature width, harmless for one unpadded clip), `merge_emovec`, the codec,
    and the GPT forward pass, on the clip's true frames."""
    from transformers import Wav2Vec2BertModel

    clip = _speech_clips(demo_build, 1)[0]
    ours = backend.extract([clip])[0]
    gpt = backend.gpt
    full = Wav2Vec2BertModel.from_pretrained(models["w2v_bert"]).eval()
    stats = torch.load(models["indextts2_dir"] / "wav2vec2bert_stats.pt", weights_only=True)
    inputs = backend.extractor(np.pad(clip.audio, (0, TAIL_SAMPLES)), sampling_rate=16_000,
                               return_tensors="pt")
    with torch.inference_mode():
        hidden = full(**inputs, output_hidden_states=True).hidden_states[17]
        semantic = ((hidden - stats["mean"]) / torch.sqrt(stats["var"]))[
            :, : semantic_frames(len(clip.audio))]
        width = torch.tensor([semantic.shape[-1]])
        spk_cond = gpt.get_conditioning(semantic.transpose(1, 2), width)
        emovec = gpt.merge_emovec(semantic, semantic, width, width, alpha=1.0)
        codes = backend.codec.quantize(semantic)[0].reshape(1, -1)
        tokens = torch.tensor([backend.tokenizer.convert_tokens_to_ids(
            backend.tokenizer.tokenize(clip.text))])
        latent = gpt(spk_cond, tokens, torch.tensor([tokens.shape[-1]]), codes,
                     torch.tensor([codes.shape[-1]]), semantic, cond_mel_lengths=width,
                     emo_cond_mel_lengths=width, emo_vec=emovec,
                     use_speed=torch.zeros(1, dtype=torch.long))
        projected = backend.gpt_layer(latent)
    np.testing.assert_array_equal(ours["semantic_codes"]["semantic_codes.npy"], codes[0].numpy())
    for got, want in ((ours["spk_cond"]["spk_cond.npy"], spk_cond[0]),
                      (ours["emovec"]["emovec.npy"], emovec[0]),
                      (ours["tts_latent"]["tts_latent.npy"], latent[0]),
                      (ours["tts_latent"]["gpt_layer.npy"], projected[0])):
        np.testing.assert_allclose(got.astype(np.float32), want.numpy(), rtol=2e-3, atol=2e-3)


def test_padded_batches_give_each_clip_its_own_features(backend, demo_build):
    clips = _speech_clips(demo_build, 3)
    batched = backend.extract(clips)
    for clip, together in zip(clips, batched, strict=True):
        alone = backend.extract([clip])[0]
        np.testing.assert_array_equal(together["semantic_codes"]["semantic_codes.npy"],
                                      alone["semantic_codes"]["semantic_codes.npy"])
        for name, field in (("spk_cond", "spk_cond.npy"), ("emovec", "emovec.npy"),
                            ("emovec", "emo_cond.npy"), ("tts_latent", "tts_latent.npy"),
                            ("tts_latent", "gpt_layer.npy")):
            np.testing.assert_allclose(together[name][field].astype(np.float32),
                                       alone[name][field].astype(np.float32),
                                       rtol=1e-2, atol=1e-2, err_msg=f"{clip.key} {field}")
        assert len(together["tts_latent"]["tts_latent.npy"]) == semantic_frames(len(clip.audio))
        assert abs(semantic_frames(len(clip.audio)) - clip.duration * 50) <= 1


def test_clips_the_gpt_cannot_take_are_refused_with_a_reason_and_the_rest_kept(backend):
    noise = np.random.default_rng(0).normal(scale=0.1, size=16_000).astype(np.float32)
    clips = [ClipInput("text", noise, "word " * 700, 1.0),
             ClipInput("fine", noise, "Hello there.", 1.0),
             ClipInput("audio", np.zeros(37 * 16_000, np.float32), "a long pause", 37.0),
             ClipInput("short", noise[:400], "hi", 0.025)]
    results = backend.extract(clips)
    assert results[0].startswith("text_too_long_for_gpt: ") and "> 600" in results[0]
    assert len(results[1]["tts_latent"]["gpt_layer.npy"]) == 50
    assert results[2] == f"audio_too_long_for_gpt: {semantic_frames(37 * 16_000)} codes > 1815"
    assert results[3] == "too_short_for_indextts2: 1 frames < 3"


def test_upstream_import_leaves_no_torchaudio_stand_in_behind():
    import_upstream()
    torchaudio = sys.modules.get("torchaudio")
    assert torchaudio is None or getattr(torchaudio, "__file__", None)


def test_a_config_that_is_not_indextts2_2_0_is_refused(models, tmp_path):
    folder = tmp_path / "IndexTTS-1.5"
    shutil.copytree(models["indextts2_dir"], folder)
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["version"] = 1.5
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match="not an IndexTTS2 config"):
        locate_files(folder, str(models["w2v_bert"]), str(models["semantic_codec"]))


def test_missing_model_files_say_what_to_download(models, tmp_path, hub_offline):
    folder = tmp_path / "partial"
    shutil.copytree(models["indextts2_dir"], folder)
    (folder / "s2mel.pth").unlink()
    with pytest.raises(FileNotFoundError, match="s2mel.pth not found.*IndexTeam/IndexTTS-2"):
        locate_files(folder, str(models["w2v_bert"]), str(models["semantic_codec"]))
    with pytest.raises(FileNotFoundError, match="amphion/MaskGCT.*CC BY-NC 4.0"):
        locate_files(models["indextts2_dir"], str(models["w2v_bert"]), "amphion/MaskGCT")


def test_gpt_layer_is_read_strictly_from_the_s2mel_checkpoint(models, tmp_path):
    projection = load_gpt_layer(models["indextts2_dir"] / "s2mel.pth")
    assert [layer.out_features for layer in projection] == [256, 128, 1024]
    state = torch.load(models["indextts2_dir"] / "s2mel.pth", weights_only=True)
    del state["net"]["gpt_layer"]["2.bias"]
    torch.save(state, tmp_path / "s2mel.pth")
    with pytest.raises(RuntimeError, match="2.bias"):
        load_gpt_layer(tmp_path / "s2mel.pth")


@pytest.mark.e2e
def test_indextts2_sets_end_to_end_and_train_on_tts_latents(demo_copy, models, tmp_path):
    dataset = demo_copy
    summary = run_extract(ExtractConfig(
        dataset_dir=dataset, feature_sets=("whisper", *INDEXTTS2_SETS), workers=1,
        progress=False, **{k: str(v) for k, v in models.items()}))
    for name in INDEXTTS2_SETS:
        checks = summary.feature_sets[name].checks
        assert not any(checks.problems.values()) and not checks.refused, name
    info = Dataset.open_folder(dataset).feature_set("tts_latent")
    assert {"gpt.pth", "s2mel.pth", "bpe.model", "model.safetensors"} <= set(
        info.model["files"]) and info.licences["IndexTTS2"] == "bilibili Model Use License"
    card = (dataset / "README.md").read_text()
    assert "| MaskGCT semantic codec (features/semantic_codes) | CC BY-NC 4.0 |" in card
    assert "| IndexTTS2 (features/semantic_codes) | bilibili Model Use License |" in card
    samples = all_samples(dataset, {"semantic_codes": ["semantic_codes.npy"],
                                    "tts_latent": ["gpt_layer.npy"]})
    for name, field, dtype in (("semantic_codes", "semantic_codes.npy", np.int16),
                               ("tts_latent", "gpt_layer.npy", np.float16)):
        assert all(s.features[name][field].dtype == dtype for s in samples.values())
    loaded = load_dataset(str(dataset), "tts_latent", split="train")
    assert np.asarray(loaded[0]["gpt_layer.npy"]).shape[1] == 1024
    run = tmp_path / "run"
    train(load_config(None, ["steps=30", "val_every=30", "backbone=precomputed",
                             "backbone_set=tts_latent", "backbone_field=gpt_layer.npy",
                             "teacher_set=whisper", "batch_size=4"],
                      data=str(dataset), out=str(run)))
    history = [json.loads(line) for line in (run / "validation.jsonl").read_text().splitlines()]
    assert np.isfinite(history[-1]["loss"]) and history[-1]["loss"] < history[0]["loss"]


class _NotATensor:
    pass


def test_the_gpt_checkpoint_is_read_as_tensors_only_and_strictly(models, tmp_path):
    import pickle

    from unitaf_data.features.indextts2 import load_gpt

    upstream = import_upstream()
    config = locate_files(models["indextts2_dir"], str(models["w2v_bert"]),
                          str(models["semantic_codec"])).config
    state = torch.load(models["indextts2_dir"] / "gpt.pth", weights_only=True)
    torch.save({"model": state, "note": _NotATensor()}, tmp_path / "pickled.pth")
    with pytest.raises(pickle.UnpicklingError):
        load_gpt(upstream, config, tmp_path / "pickled.pth")
    del state["mel_head.bias"]
    torch.save({"model": state}, tmp_path / "partial.pth")
    with pytest.raises(RuntimeError, match="mel_head.bias"):
        load_gpt(upstream, config, tmp_path / "partial.pth")
