"""Random-weight IndexTTS2 model folders in the real file formats, for tests and benchmarks.

Every model is built from the upstream classes (indextts2-inference's UnifiedVoice and
RepCodec, transformers' Wav2Vec2BertModel) and saved the way the released files are:
`config.yaml` with IndexTTS2's keys, `gpt.pth` (a state dict), `bpe.model` (SentencePiece, upper
case text), `wav2vec2bert_stats.pt` ({mean, var}), `s2mel.pth` ({"net": {"gpt_layer": ...}},
only the part the feature backend reads), a w2v-BERT transformers folder and the MaskGCT codec's
`semantic_codec/model.safetensors`. `size="tiny"` keeps the real widths where the features'
shapes depend on them (w2v-BERT 1024-d, GPT 1280-d, codebook 8192) and shrinks everything else;
`size="real"` has IndexTTS2's published sizes.
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
        "s2mel": {"preprocess_params": {"sr": 22050, "spect_params": {
            "n_fft": 1024, "win_length": 1024, "hop_length": 256, "n_mels": 80, "fmin": 0,
            "fmax": "None"}}},
        "gpt_checkpoint": "gpt.pth", "w2v_stat": "wav2vec2bert_stats.pt",
        "s2mel_checkpoint": "s2mel.pth", "emo_matrix": "feat2.pt", "spk_matrix": "feat1.pt",
        "emo_num": [3, 17, 2, 8, 4, 5, 10, 24], "qwen_emo_path": "qwen0.6bemo4-merge/",
        "vocoder": {"type": "bigvgan", "name": "nvidia/bigvgan_v2_22khz_80band_256x"},
        "version": 2.0,
    }


def write_random_indextts2(root: Path, size: str = "tiny", seed: int = 0) -> dict[str, Path]:
    """Write the three model locations under `root`; returns the paths to pass as
    --indextts2-dir, --w2v-bert and --semantic-codec."""
    from omegaconf import OmegaConf
    from safetensors.torch import save_model
    from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2BertConfig, Wav2Vec2BertModel

    from unitaf_data.features.indextts2 import CODEC_FILE, import_upstream

    torch.manual_seed(seed)
    upstream = import_upstream()
    folder, w2v_folder = root / "IndexTTS-2", root / "w2v-bert-2.0"
    folder.mkdir(parents=True, exist_ok=True)
    config = indextts2_config(size)
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    gpt = upstream.UnifiedVoice(**OmegaConf.create(config).gpt)
    torch.save(gpt.state_dict(), folder / "gpt.pth")
    width = config["gpt"]["model_dim"]
    gpt_layer = torch.nn.Sequential(torch.nn.Linear(width, 256), torch.nn.Linear(256, 128),
                                    torch.nn.Linear(128, 1024))
    torch.save({"net": {"gpt_layer": gpt_layer.state_dict()}}, folder / "s2mel.pth")
    torch.save({"mean": torch.randn(1024) * 0.1, "var": torch.rand(1024) + 0.5},
               folder / "wav2vec2bert_stats.pt")
    _train_bpe(folder / "bpe.model", config["gpt"]["number_text_tokens"])
    w2v_bert = Wav2Vec2BertModel(Wav2Vec2BertConfig(**W2V_BERT[size]))
    w2v_bert.save_pretrained(w2v_folder)
    SeamlessM4TFeatureExtractor().save_pretrained(w2v_folder)
    codec_path = root / "MaskGCT" / CODEC_FILE
    codec_path.parent.mkdir(parents=True, exist_ok=True)
    save_model(upstream.RepCodec(cfg=OmegaConf.create(config).semantic_codec), str(codec_path))
    return {"indextts2_dir": folder, "w2v_bert": w2v_folder, "semantic_codec": codec_path}


def _train_bpe(path: Path, vocab_size: int) -> None:
    """A SentencePiece BPE model on upper-case English (IndexTTS2 upper-cases its text)."""
    import io

    import sentencepiece

    from unitaf_data.sources.demo import SENTENCES

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter([s.upper() for s in SENTENCES] * 4), model_writer=model,
        model_type="bpe", vocab_size=min(vocab_size, 256), hard_vocab_limit=False,
        character_coverage=1.0, minloglevel=2)
    path.write_bytes(model.getvalue())
