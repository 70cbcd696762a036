"""The `unitalker` backend: checkpoints with UniTalker's real key layout (random weights),
loaded by the real loading code and run end to end through the extraction pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reference import (
    CHECKPOINT_KEYS,
    SHARED_REASON,
    all_samples,
    needs_shared,
    reference_checkpoint_shapes,
)
from unitaf_data.features.unitalker import encoder_config, encoder_state, load_encoder
from unitaf_pipelines.extract import ExtractConfig, run_extract

needs_reference = needs_shared(CHECKPOINT_KEYS)


def random_checkpoint(shapes: dict[str, tuple[int, ...]], path) -> None:
    """A checkpoint with exactly these keys: the encoder from the transformers class its
    config implies (its own random init), every other tensor random of its shape."""
    from transformers import Wav2Vec2Model, WavLMModel

    torch.manual_seed(0)
    state = encoder_state({k: torch.empty(s) for k, s in shapes.items()})
    config = encoder_config({k: tuple(v.shape) for k, v in state.items()})
    model = (WavLMModel if config.model_type == "wavlm" else Wav2Vec2Model)(config)
    encoder = model.state_dict()
    renamed = {v: k for k, v in _legacy_names(shapes).items()}
    checkpoint = {}
    for key, shape in shapes.items():
        name = key.removeprefix("audio_encoder.")
        name = renamed.get(key, name)
        checkpoint[key] = (encoder[name].clone() if key.startswith("audio_encoder.")
                           else torch.randn(shape) * 0.02)
    torch.save(checkpoint, path)


def _legacy_names(shapes):
    """Checkpoint key → transformers name for the legacy weight-norm parameters."""
    out = {}
    for key in shapes:
        for old, new in (("weight_g", "parametrizations.weight.original0"),
                         ("weight_v", "parametrizations.weight.original1")):
            if key.startswith("audio_encoder.") and key.endswith(old):
                out[key.removeprefix("audio_encoder.")[: -len(old)] + new] = key
    return out


@needs_reference
@pytest.mark.parametrize("checkpoint, kind, width, layers", [
    ("UniTalker-B-D0-D7.pt", "wavlm", 768, 12), ("UniTalker-L-D0-D7.pt", "wav2vec2", 1024, 24)])
def test_config_read_off_the_real_key_layout_rebuilds_it_exactly(checkpoint, kind, width,
                                                                 layers):
    from transformers import Wav2Vec2Model, WavLMModel

    shapes = reference_checkpoint_shapes(checkpoint)
    state = encoder_state({k: torch.empty(s, device="meta") for k, s in shapes.items()})
    config = encoder_config({k: tuple(v.shape) for k, v in state.items()})
    assert (config.model_type, config.hidden_size, config.num_hidden_layers) == (
        kind, width, layers)
    with torch.device("meta"):
        model = (WavLMModel if kind == "wavlm" else Wav2Vec2Model)(config)
    built = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert built == {k: tuple(v.shape) for k, v in state.items()}


def test_a_small_checkpoint_round_trips_through_the_loader(tmp_path):
    from transformers import WavLMConfig, WavLMModel

    torch.manual_seed(1)
    model = WavLMModel(WavLMConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                   intermediate_size=64, conv_dim=(32,) * 7, conv_bias=False,
                                   num_conv_pos_embeddings=16,
                                   num_conv_pos_embedding_groups=4)).eval()
    torch.save({"state_dict": {f"audio_encoder.{k}": v for k, v in model.state_dict().items()}
                | {"decoder.audio_feature_map.weight": torch.zeros(8, 32)}},
               tmp_path / "small.pt")
    loaded, info = load_encoder(tmp_path / "small.pt")
    audio = torch.randn(1, 16000)
    with torch.inference_mode():
        np.testing.assert_allclose(loaded(audio).last_hidden_state,
                                   model(audio).last_hidden_state, atol=1e-5)
    assert info["missing_keys"] == [] and info["architecture"] == "wavlm"


@pytest.fixture(scope="module")
def unitalker_checkpoint(tmp_path_factory):
    """UniTalker-B's full key layout with random weights when ../shared is present."""
    if not CHECKPOINT_KEYS.exists():
        pytest.skip(SHARED_REASON.format(name=CHECKPOINT_KEYS.name))
    path = tmp_path_factory.mktemp("ckpt") / "UniTalker-B-random.pt"
    random_checkpoint(reference_checkpoint_shapes("UniTalker-B-D0-D7.pt"), path)
    return path


@pytest.mark.e2e
def test_unitalker_teacher_features_end_to_end(demo_copy, unitalker_checkpoint):
    dataset = demo_copy
    summary = run_extract(ExtractConfig(dataset_dir=dataset, feature_sets=("unitalker",),
                                        unitalker_ckpt=str(unitalker_checkpoint),
                                        workers=1, progress=False))
    info = summary.feature_sets["unitalker"]
    assert not any(info.checks.problems.values()) and info.dims == 768
    assert info.model["architecture"] == "wavlm" and info.model["files"]
    for sample in all_samples(dataset, {"unitalker": ["teacher.npy"]}).values():
        teacher = sample.features["unitalker"]["teacher.npy"]
        assert teacher.dtype == np.float16 and teacher.shape[1] == 768
        assert abs(len(teacher) - sample.meta.duration * 50) <= 1
