"""Random-weight IndexTTS2 model folders in the real file formats, for tests and benchmarks.

Every model is built from the upstream classes (indextts2-inference's UnifiedVoice and
RepCodec, transformers' Wav2Vec2BertModel) and saved the way the released files are:
`config.yaml` with IndexTTS2's keys, `gpt.pth` (a state dict), `bpe.model` (SentencePiece, upper
case text), `wav2vec2bert_stats.pt` ({mean, var}), `s2mel.pth` ({"net": {"cfm", "length_regulator",
"gpt_layer"}}, upstream's `MyModel`), a w2v-BERT transformers folder and the MaskGCT codec's
`semantic_codec/model.safetensors`; with `synthesis=True` also what speech synthesis reads:
`feat1.pt` / `feat2.pt` (the emotion speakers' CAMPPlus styles and emotion vectors, tensors), a
BigVGAN folder as nvidia/bigvgan_v2_22khz_80band_256x ships it (`config.json`,
`bigvgan_generator.pt` = {"generator": state dict}) and CAMPPlus's `campplus_cn_common.bin` (a
state dict at its only size, as upstream builds it). `size="tiny"` keeps the real widths where
the features' shapes or the file formats fix them (w2v-BERT 1024-d, GPT 1280-d, codebook 8192,
80 mel bands, hop 256, CAMPPlus) and shrinks everything else; `size="real"` has IndexTTS2's
published sizes. The tiny GPT's stop-token bias is raised so that generation ends after some
tens of codes, as a trained GPT's does (a random one runs to the code limit).
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

CONDITIONING = {
    "tiny": {"output_size": 64, "linear_units": 128, "attention_heads": 2, "num_blocks": 1,
             "input_layer": "conv2d2", "perceiver_mult": 2},
    "real": {"output_size": 512, "linear_units": 2048, "attention_heads": 8, "num_blocks": 6,
             "input_layer": "conv2d2", "perceiver_mult": 2},
}
EMO_CONDITIONING = {
    "tiny": CONDITIONING["tiny"],
    "real": {"output_size": 512, "linear_units": 1024, "attention_heads": 4, "num_blocks": 4,
             "input_layer": "conv2d2", "perceiver_mult": 2},
}
GPT = {
    "tiny": {"model_dim": 1280, "layers": 1, "heads": 20, "max_text_tokens": 600,
             "max_mel_tokens": 1815, "number_text_tokens": 256},
    "real": {"model_dim": 1280, "layers": 24, "heads": 20, "max_text_tokens": 600,
             "max_mel_tokens": 1815, "number_text_tokens": 12000},
}
CODEC = {
    "tiny": {"vocos_dim": 64, "vocos_intermediate_dim": 128, "vocos_num_layers": 1},
    "real": {"vocos_dim": 384, "vocos_intermediate_dim": 2048, "vocos_num_layers": 12},
}
S2MEL = {
    "tiny": {"channels": 64, "dit": {"hidden_dim": 64, "num_heads": 2, "depth": 2},
             "wavenet": {"hidden_dim": 64, "num_layers": 2}},
    "real": {"channels": 512, "dit": {"hidden_dim": 512, "num_heads": 8, "depth": 13},
             "wavenet": {"hidden_dim": 512, "num_layers": 8}},
}
BIGVGAN = {  # nvidia/bigvgan_v2_22khz_80band_256x's config.json; tiny: fewer channels and kernels
    "tiny": {"upsample_initial_channel": 128, "resblock_kernel_sizes": [3],
             "resblock_dilation_sizes": [[1, 3, 5]]},
    "real": {"upsample_initial_channel": 1536, "resblock_kernel_sizes": [3, 7, 11],
             "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]]},
}
TINY_STOP_BIAS = 1.0  # mel_head bias of the stop code in the tiny GPT
EMOTION_SPEAKERS = [3, 17, 2, 8, 4, 5, 10, 24]  # config.emo_num: reference speakers per emotion
W2V_BERT = {
    "tiny": {"num_hidden_layers": 18, "intermediate_size": 64, "num_attention_heads": 4,
             "conv_depthwise_kernel_size": 3},
    "real": {},  # transformers' defaults are w2v-BERT 2.0's (24 layers, 1024-d, 580M)
}


def indextts2_config(size: str) -> dict:
    """IndexTTS2's config.yaml layout (the keys the feature backend and upstream read)."""
    return {
        "dataset": {"bpe_model": "bpe.model", "sample_rate": 24000, "squeeze": False},
        "gpt": {**GPT[size], "use_mel_codes_as_input": True, "mel_length_compression": 1024,
                "number_mel_codes": 8194, "start_mel_token": 8192, "stop_mel_token": 8193,
                "start_text_token": 0, "stop_text_token": 1, "train_solo_embeddings": False,
                "condition_type": "conformer_perceiver",
                "condition_module": CONDITIONING[size],
                "emo_condition_module": EMO_CONDITIONING[size]},
        "semantic_codec": {"codebook_size": 8192, "hidden_size": 1024, "codebook_dim": 8,
                           **CODEC[size]},
        "s2mel": _s2mel_config(S2MEL[size]),
        "gpt_checkpoint": "gpt.pth", "w2v_stat": "wav2vec2bert_stats.pt",
        "s2mel_checkpoint": "s2mel.pth", "emo_matrix": "feat2.pt", "spk_matrix": "feat1.pt",
        "emo_num": EMOTION_SPEAKERS, "qwen_emo_path": "qwen0.6bemo4-merge/",
        "vocoder": {"type": "bigvgan", "name": "nvidia/bigvgan_v2_22khz_80band_256x"},
        "version": 2.0,
    }


def _s2mel_config(size: dict) -> dict:
    """IndexTTS2's s2mel section (a seed-vc DiT with a WaveNet head) at the given widths."""
    dit = size["dit"]
    return {
        "preprocess_params": {"sr": 22050, "spect_params": {
            "n_fft": 1024, "win_length": 1024, "hop_length": 256, "n_mels": 80, "fmin": 0,
            "fmax": "None"}},
        "dit_type": "DiT", "reg_loss_type": "l1", "style_encoder": {"dim": 192},
        "length_regulator": {"channels": size["channels"], "is_discrete": False,
                             "in_channels": 1024, "content_codebook_size": 2048,
                             "sampling_ratios": [1, 1, 1, 1], "vector_quantize": False,
                             "n_codebooks": 1, "quantizer_dropout": 0.0, "f0_condition": False,
                             "n_f0_bins": 512},
        "DiT": {**dit, "class_dropout_prob": 0.1, "block_size": 8192, "in_channels": 80,
                "style_condition": True, "final_layer_type": "wavenet", "target": "mel",
                "content_dim": size["channels"], "content_codebook_size": 1024,
                "content_type": "discrete", "f0_condition": False, "n_f0_bins": 512,
                "content_codebooks": 1, "is_causal": False, "long_skip_connection": True,
                "zero_prompt_speech_token": False, "time_as_token": False,
                "style_as_token": False, "uvit_skip_connection": True,
                "add_resblock_in_transformer": False},
        "wavenet": {**size["wavenet"], "kernel_size": 5, "dilation_rate": 1, "p_dropout": 0.2,
                    "style_condition": True},
    }


def bigvgan_config(size: str) -> dict:
    return {"resblock": "1", "upsample_rates": [4, 4, 2, 2, 2, 2],
            "upsample_kernel_sizes": [8, 8, 4, 4, 4, 4], **BIGVGAN[size],
            "activation": "snakebeta", "snake_logscale": True, "use_tanh_at_final": False,
            "use_bias_at_final": False, "num_mels": 80, "n_fft": 1024, "hop_size": 256,
            "win_size": 1024, "sampling_rate": 22050, "fmin": 0, "fmax": None}


def write_random_indextts2(root: Path, size: str = "tiny", seed: int = 0,
                           synthesis: bool = False) -> dict[str, Path]:
    """Write the model locations under `root`; returns the paths to pass as
    --indextts2-dir, --w2v-bert and --semantic-codec (and, with `synthesis`, --bigvgan and
    --campplus)."""
    from omegaconf import OmegaConf
    from safetensors.torch import save_model
    from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2BertConfig, Wav2Vec2BertModel

    from unitaf_data.features.indextts2 import CODEC_FILE, import_upstream

    torch.manual_seed(seed)
    upstream = import_upstream(synthesis=True)
    folder, w2v_folder = root / "IndexTTS-2", root / "w2v-bert-2.0"
    folder.mkdir(parents=True, exist_ok=True)
    config = indextts2_config(size)
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    gpt = upstream.UnifiedVoice(**OmegaConf.create(config).gpt)
    if size == "tiny":
        with torch.no_grad():
            gpt.mel_head.bias[config["gpt"]["stop_mel_token"]] += TINY_STOP_BIAS
    torch.save(gpt.state_dict(), folder / "gpt.pth")
    s2mel = upstream.MyModel(OmegaConf.create(config).s2mel, use_gpt_latent=True)
    torch.save({"net": {name: part.state_dict() for name, part in s2mel.models.items()}},
               folder / "s2mel.pth")
    torch.save({"mean": torch.randn(1024) * 0.1, "var": torch.rand(1024) + 0.5},
               folder / "wav2vec2bert_stats.pt")
    _train_bpe(folder / "bpe.model", config["gpt"]["number_text_tokens"])
    w2v_bert = Wav2Vec2BertModel(Wav2Vec2BertConfig(**W2V_BERT[size]))
    w2v_bert.save_pretrained(w2v_folder)
    SeamlessM4TFeatureExtractor().save_pretrained(w2v_folder)
    codec_path = root / "MaskGCT" / CODEC_FILE
    codec_path.parent.mkdir(parents=True, exist_ok=True)
    save_model(upstream.RepCodec(cfg=OmegaConf.create(config).semantic_codec), str(codec_path))
    paths = {"indextts2_dir": folder, "w2v_bert": w2v_folder, "semantic_codec": codec_path}
    if synthesis:
        paths |= _write_synthesis_models(root, folder, size, config["gpt"]["model_dim"])
    return paths


def _write_synthesis_models(root: Path, folder: Path, size: str, width: int) -> dict[str, Path]:
    import json

    from unitaf_data.features.indextts2 import CAMPPLUS_FILE, import_upstream

    upstream = import_upstream(synthesis=True)
    speakers = sum(EMOTION_SPEAKERS)
    torch.save(torch.randn(speakers, 192), folder / "feat1.pt")
    torch.save(torch.randn(speakers, width) * 0.1, folder / "feat2.pt")
    vocoder = root / "bigvgan_v2_22khz_80band_256x"
    vocoder.mkdir(parents=True, exist_ok=True)
    config = bigvgan_config(size)
    (vocoder / "config.json").write_text(json.dumps(config, indent=4))
    from indextts.s2mel.modules.bigvgan.env import AttrDict

    generator = upstream.BigVGAN(AttrDict(config))
    torch.save({"generator": generator.state_dict()}, vocoder / "bigvgan_generator.pt")
    campplus = root / "campplus" / CAMPPLUS_FILE
    campplus.parent.mkdir(parents=True, exist_ok=True)
    torch.save(upstream.CAMPPlus(feat_dim=80, embedding_size=192).state_dict(), campplus)
    return {"bigvgan": vocoder, "campplus": campplus}


def _train_bpe(path: Path, vocab_size: int) -> None:
    """A SentencePiece BPE model on upper-case English (IndexTTS2 upper-cases its text)."""
    import io

    import sentencepiece

    from unitaf_data.sources.demo_sentences import sentence_pool

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter([s.upper() for s in sentence_pool()[:40]] * 3), model_writer=model,
        model_type="bpe", vocab_size=min(vocab_size, 256), hard_vocab_limit=False,
        character_coverage=1.0, minloglevel=2)
    path.write_bytes(model.getvalue())
