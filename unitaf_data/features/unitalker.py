"""Teacher features from the audio encoder of a UniTalker checkpoint.

UniTalker (Fan et al., ECCV 2024, Apache-2.0) stores its audio encoder under
`audio_encoder.*` with Hugging Face transformers' parameter names: UniTalker-B is a
WavLM-base-plus (768-d), UniTalker-L a wav2vec2-large-xlsr-53-style model (1024-d). The
encoder's configuration is read off the checkpoint's own keys and shapes (layers, widths,
heads, convolution stack, normalisation), the transformers model is built from it, and the
weights are loaded strictly. `--unitalker-ckpt` may also be a Hugging Face model folder.
`teacher` is the last hidden state at 50 Hz, stored as float16.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from unitaf_data.features import (
    SAMPLES_PER_FRAME,
    ClipInput,
    ExtractSettings,
    folder_hashes,
    sha256_of,
)

ENCODER_PREFIX = "audio_encoder."
RECEPTIVE_FIELD = 400  # samples seen by one output frame of the convolution stack
_LEGACY_WEIGHT_NORM = {"weight_g": "parametrizations.weight.original0",
                       "weight_v": "parametrizations.weight.original1"}


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The state dict of a UniTalker `.pt` (bare, or under `state_dict` / `model`)."""
    import torch

    data = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(wrapper), dict):
            data = data[wrapper]
    return data


def encoder_state(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """`audio_encoder.*` without the prefix, legacy weight-norm names renamed."""
    state = {}
    for key, value in checkpoint.items():
        if key.startswith(ENCODER_PREFIX):
            name = key[len(ENCODER_PREFIX):]
            for old, new in _LEGACY_WEIGHT_NORM.items():
                name = re.sub(rf"\.{old}$", f".{new}", name)
            state[name] = value
    if not state:
        raise ValueError("the checkpoint has no audio_encoder.* parameters")
    return state


def encoder_config(shapes: dict[str, tuple[int, ...]]):
    """The transformers config (WavLMConfig or Wav2Vec2Config) that has these parameters."""
    from transformers import Wav2Vec2Config, WavLMConfig

    hidden = shapes["feature_projection.projection.weight"][0]
    conv = sorted({int(m[1]) for k in shapes
                   if (m := re.match(r"feature_extractor\.conv_layers\.(\d+)\.conv\.weight", k))})
    layers = {int(m[1]) for k in shapes if (m := re.match(r"encoder\.layers\.(\d+)\.", k))}
    pos_conv = shapes["encoder.pos_conv_embed.conv.parametrizations.weight.original1"]
    layer_norm_convs = "feature_extractor.conv_layers.1.layer_norm.weight" in shapes
    common = {
        "hidden_size": hidden, "num_hidden_layers": len(layers),
        "intermediate_size": shapes["encoder.layers.0.feed_forward.intermediate_dense.weight"][0],
        "conv_dim": tuple(shapes[f"feature_extractor.conv_layers.{i}.conv.weight"][0]
                          for i in conv),
        "conv_kernel": tuple(shapes[f"feature_extractor.conv_layers.{i}.conv.weight"][2]
                             for i in conv),
        "conv_bias": "feature_extractor.conv_layers.0.conv.bias" in shapes,
        "feat_extract_norm": "layer" if layer_norm_convs else "group",
        "do_stable_layer_norm": layer_norm_convs,
        "num_conv_pos_embeddings": pos_conv[2],
        "num_conv_pos_embedding_groups": hidden // pos_conv[1],
    }
    if "encoder.layers.0.attention.gru_rel_pos_const" in shapes:
        return WavLMConfig(
            **common, num_attention_heads=shapes["encoder.layers.0.attention.gru_rel_pos_const"][1],
            num_buckets=shapes["encoder.layers.0.attention.rel_attn_embed.weight"][0])
    return Wav2Vec2Config(**common, num_attention_heads=hidden // 64)


def load_encoder(source: str | Path):
    """(model in eval mode, description) from a UniTalker checkpoint or an HF model folder."""
    from transformers import AutoModel, Wav2Vec2Model, WavLMModel

    source = Path(source)
    if source.is_dir():
        model = AutoModel.from_pretrained(source, local_files_only=True)
        return model.eval(), {"source": "huggingface folder", "files": folder_hashes(source),
                              "missing_keys": [], "unexpected_keys": []}
    state = encoder_state(read_checkpoint(source))
    config = encoder_config({k: tuple(v.shape) for k, v in state.items()})
    model = (WavLMModel if config.model_type == "wavlm" else Wav2Vec2Model)(config)
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys:
        raise ValueError(f"{source}: the encoder lacks {len(result.missing_keys)} parameters, "
                         f"e.g. {result.missing_keys[:3]}")
    return model.eval(), {"source": "unitalker checkpoint", "files": {source.name:
                                                                      sha256_of(source)},
                          "architecture": config.model_type, "missing_keys": [],
                          "unexpected_keys": list(result.unexpected_keys)}


class UniTalkerBackend:
    """`unitalker`: last hidden state of the checkpoint's audio encoder, 50 Hz, float16."""

    def __init__(self, settings: ExtractSettings) -> None:
        import torch

        self.model, self.info = load_encoder(settings.unitalker_ckpt)
        self.device = torch.device(settings.device)
        self.model.to(self.device)
        config = self.model.config
        self.normalize = config.feat_extract_norm == "layer"
        # models with group-normalised convolutions take no attention mask: batch clips of
        # one length only, so padding never changes a clip's features
        self.same_length = not self.normalize
        self.dims = config.hidden_size

    def extract(self, clips: list[ClipInput]) -> list[dict[str, dict[str, np.ndarray]]]:
        import torch

        audios = [self._prepare(c.audio) for c in clips]
        longest = max(len(a) for a in audios)
        batch = np.zeros((len(audios), longest), np.float32)
        mask = np.zeros((len(audios), longest), np.int64)
        for i, audio in enumerate(audios):
            batch[i, : len(audio)], mask[i, : len(audio)] = audio, 1
        with torch.inference_mode():
            inputs = {"input_values": torch.from_numpy(batch).to(self.device)}
            if self.normalize:
                inputs["attention_mask"] = torch.from_numpy(mask).to(self.device)
            hidden = self.model(**inputs).last_hidden_state.float().cpu().numpy()
        lengths = self.model._get_feat_extract_output_lengths(
            torch.tensor([len(a) for a in audios])).tolist()
        return [{"unitalker": {"teacher.npy": hidden[i, :n].astype(np.float16)}}
                for i, n in enumerate(lengths)]

    def _prepare(self, audio: np.ndarray) -> np.ndarray:
        """Normalised where the model expects it, and 80 samples (5 ms) longer, so that the
        encoder's 400-sample receptive field gives floor(samples / 320) frames: within one
        frame of the clip's duration at 50 Hz."""
        if self.normalize:
            audio = (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)
        return np.pad(audio, (0, RECEPTIVE_FIELD - SAMPLES_PER_FRAME))

    def describe(self) -> dict[str, dict]:
        return {"unitalker": {
            "backend": "unitalker", "model": self.info, "frame_rate": 50.0, "dims": self.dims,
            "fields": {"teacher.npy": {"dtype": "float16", "shape": ["T", self.dims]}},
        }}
