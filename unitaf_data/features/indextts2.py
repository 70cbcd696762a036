"""IndexTTS2 features of each clip's own audio and text (the `indextts2` backend).

One w2v-BERT 2.0 pass per batch (hidden layer 17, normalised by IndexTTS2's statistics; the
layers after 17 are not built) feeds everything else:

- `semantic_codes`: `semantic_codes.npy` int16 (T50,), MaskGCT semantic codec codes, codebook 8192
  (the "GT audio tokens");
- `spk_cond`: `spk_cond.npy` float16 (32, 1280), the GPT's speaker conditioning latents;
- `emovec`: `emovec.npy` float16 (1280,), the emotion vector the GPT adds to them (paper
  appendix C), and `emo_cond.npy` float16 (1024,), the same before its two projections;
- `tts_latent`: `tts_latent.npy` float16 (T50, 1280), GPT latents teacher-forced on the clip's
  text and codes, and `gpt_layer.npy` float16 (T50, 1024), their projection by s2mel's
  `gpt_layer` (what the projector is trained on).

The model classes come from the `indextts2-inference` package (`pip install
'unitaf[indextts2]'`); its modules are imported without the package `__init__`, which would
load the whole inference front-end. The files come from the user (none ship with unitaf):
IndexTTS2's `config.yaml`, `gpt.pth`, `bpe.model`, `wav2vec2bert_stats.pt`, `s2mel.pth`
(IndexTeam/IndexTTS-2, bilibili Model Use License), w2v-BERT 2.0 (facebook/w2v-bert-2.0, MIT)
and the MaskGCT semantic codec (amphion/MaskGCT `semantic_codec/model.safetensors`, CC BY-NC
4.0).

Where this differs from IndexTTS2's inference code, on purpose: the conditioning encoders get
each clip's true length in padded batches (upstream passes the feature width as the length);
each clip gets 15 ms of trailing silence so that its 50 Hz features cover it (the w2v-BERT
front end would otherwise drop up to 1.25 frames), and the frame the feature extractor adds
to reach an even count is dropped, so a clip has floor(samples / 320) frames; speaker and
emotion conditioning read the clip's first 15 s, as IndexTTS2 cuts its prompts to 15 s;
clips beyond the GPT's text or code limits (or under 60 ms) are refused, for every set, with
a reason instead of being truncated; every checkpoint is read with `weights_only=True` (the GPT
too: upstream's `load_checkpoint` unpickles it), strictly.

The loaders, the file locations (`locate_files`, with `synthesis=True` also the synthesiser's
files) and the teacher-forced pass (`teacher_forced_latents`) are shared with IndexTTS2
synthesis (`unitaf_model.synthesis.indextts2`), so generated speech gets the same features.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import sys
import types
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from unitaf_data.features import (
    BackendPlan,
    ClipInput,
    ExtractSettings,
    folder_hashes,
    sha256_of,
)
from unitaf_data.hub import local_or_hub
from unitaf_data.schema import SAMPLE_RATE

INDEXTTS2_SETS = ("semantic_codes", "spk_cond", "emovec", "tts_latent")
SEMANTIC_LAYER = 17  # w2v-BERT hidden state IndexTTS2 reads
SEMANTIC_DIM = 1024
TAIL_SAMPLES = 240  # 15 ms of silence: floor(samples / 320) frames out of the front end
PROMPT_FRAMES = 750  # IndexTTS2 cuts speaker and emotion prompts to 15 s
MIN_FRAMES = 3  # the conformer conditioning encoders subsample 3 frames into 1
DEFAULT_W2V_BERT = "facebook/w2v-bert-2.0"
DEFAULT_SEMANTIC_CODEC = "amphion/MaskGCT"
CODEC_FILE = "semantic_codec/model.safetensors"
DEFAULT_CAMPPLUS = "funasr/campplus"  # IndexTTS2's inference code downloads it from here
CAMPPLUS_FILE = "campplus_cn_common.bin"
BIGVGAN_FILES = ("config.json", "bigvgan_generator.pt")
LICENCES = {"IndexTTS2": "bilibili Model Use License", "w2v-BERT 2.0": "MIT",
            "MaskGCT semantic codec": "CC BY-NC 4.0", "BigVGAN v2": "MIT",
            "CAMPPlus": "FunASR Model License"}
WEIGHTS_USED = {  # IndexTTS2's w2v-BERT statistics normalise every set's input
    "semantic_codes": ("w2v-BERT 2.0", "IndexTTS2", "MaskGCT semantic codec"),
    "spk_cond": ("w2v-BERT 2.0", "IndexTTS2"),
    "emovec": ("w2v-BERT 2.0", "IndexTTS2"),
    "tts_latent": ("w2v-BERT 2.0", "IndexTTS2", "MaskGCT semantic codec"),
}
_OBTAIN = {
    "indextts2": "download IndexTeam/IndexTTS-2 (bilibili Model Use License) and pass its "
                 "folder as --indextts2-dir",
    "w2v_bert": "download facebook/w2v-bert-2.0 (MIT) and pass its folder as --w2v-bert",
    "codec": f"download {CODEC_FILE} of amphion/MaskGCT (CC BY-NC 4.0) and pass it as "
             "--semantic-codec",
    "bigvgan": "download the vocoder the config names (nvidia/bigvgan_v2_22khz_80band_256x, "
               "MIT: config.json and bigvgan_generator.pt) and pass its folder as --bigvgan",
    "campplus": f"download {CAMPPLUS_FILE} of {DEFAULT_CAMPPLUS} (CAMPPlus speaker encoder, "
                "FunASR Model License) and pass it as --campplus",
}


INSTALL = "pip install 'unitaf[indextts2]' && pip install --no-deps indextts2-inference==2.1.1"


def import_upstream(synthesis: bool = False) -> types.SimpleNamespace:
    """The indextts2-inference classes this backend uses, and with `synthesis` those of the
    speech synthesiser too (s2mel, BigVGAN, CAMPPlus, the mel front end); a ValueError that
    says how to install them when they, or what they import, are missing."""
    if "indextts" not in sys.modules:
        spec = importlib.util.find_spec("indextts")
        if spec is None:
            raise ValueError(f"the IndexTTS2 model code is not installed: {INSTALL}")
        sys.modules["indextts"] = importlib.util.module_from_spec(spec)  # __init__ not run
    try:
        with _codec_import_helpers():
            from indextts.utils.maskgct.models.codec.kmeans.repcodec_model import RepCodec
        from indextts.gpt.model_v2 import UnifiedVoice
        from indextts.utils.front import TextNormalizer, TextTokenizer

        classes = {"RepCodec": RepCodec, "UnifiedVoice": UnifiedVoice,
                   "TextNormalizer": TextNormalizer, "TextTokenizer": TextTokenizer}
        if synthesis:
            from indextts.emotion import find_most_similar_cosine
            from indextts.s2mel.modules.audio import mel_spectrogram
            from indextts.s2mel.modules.bigvgan.bigvgan import BigVGAN
            from indextts.s2mel.modules.campplus.DTDNN import CAMPPlus
            from indextts.s2mel.modules.commons import MyModel

            classes |= {"BigVGAN": BigVGAN, "CAMPPlus": CAMPPlus, "MyModel": MyModel,
                        "mel_spectrogram": mel_spectrogram,
                        "find_most_similar_cosine": find_most_similar_cosine}
    except ImportError as error:
        raise ValueError(f"the IndexTTS2 model code cannot be imported ({error}): {INSTALL}"
                         ) from error
    return types.SimpleNamespace(**classes)


def plan_indextts2(feature_sets: list[str], settings: ExtractSettings) -> BackendPlan:
    """In the driver: the model code imports, every file exists (Hub ids resolved to local
    paths once), the text normaliser's grammars are compiled and cached before several
    actors would race to write that cache (about 25 s, the first time on a machine; only
    for `tts_latent`), and the host memory of one actor (its weights in float32 and room
    to work)."""
    upstream = import_upstream()
    files = locate_files(settings.indextts2_dir, settings.w2v_bert, settings.semantic_codec)
    if "tts_latent" in feature_sets:
        upstream.TextNormalizer(enable_glossary=True).load()
    weights = sum(path.stat().st_size for path in
                  (files.gpt, files.semantic_codec, *files.w2v_bert.glob("*.safetensors")))
    resolved = dataclasses.replace(settings, w2v_bert=str(files.w2v_bert),
                                   semantic_codec=str(files.semantic_codec))
    return BackendPlan(resolved, memory_bytes=int(weights * 1.3) + (1 << 30))


def _torchaudio_loads() -> bool:
    try:
        import torchaudio.functional.functional  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


@contextlib.contextmanager
def _codec_import_helpers():
    """The codec's module imports two mel-scale helpers from torchaudio at import time, for
    a mel filterbank the semantic codec never builds. Where torchaudio cannot load (its
    native library has no build for the installed torch), the same two formulas, from
    librosa, are offered under torchaudio's names for the duration of that import only."""
    if _torchaudio_loads():
        yield
        return
    import librosa
    import torch

    helpers = types.ModuleType("torchaudio.functional.functional")
    helpers._hz_to_mel = lambda freq, mel_scale="htk": float(
        librosa.hz_to_mel(freq, htk=mel_scale == "htk"))
    helpers._mel_to_hz = lambda mels, mel_scale="htk": torch.as_tensor(
        librosa.mel_to_hz(np.asarray(mels), htk=mel_scale == "htk"), dtype=torch.float32)
    names = ("torchaudio", "torchaudio.functional", "torchaudio.functional.functional")
    modules = {name: types.ModuleType(name) for name in names[:2]} | {names[2]: helpers}
    modules["torchaudio"].functional = modules["torchaudio.functional"]
    modules["torchaudio.functional"].functional = helpers
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name in names:
            sys.modules.pop(name, None)


@dataclass(frozen=True)
class SynthesisFiles:
    """The files IndexTTS2's speech synthesis needs beyond the feature backend's."""

    bigvgan: Path  # folder: config.json, bigvgan_generator.pt
    campplus: Path  # campplus_cn_common.bin
    emo_matrix: Path  # feat2.pt: emotion vectors of the 8 emotions' speakers
    spk_matrix: Path  # feat1.pt: those speakers' CAMPPlus styles
    qwen_emotion: Path  # the text emotion model folder (only needed for emotion from text)


@dataclass(frozen=True)
class IndexTTS2Files:
    """Where each model file of the stack is, and IndexTTS2's config."""

    config_path: Path
    gpt: Path
    bpe: Path
    w2v_stats: Path
    s2mel: Path
    w2v_bert: Path
    semantic_codec: Path
    config: Any  # the loaded config.yaml (OmegaConf)
    synthesis: SynthesisFiles | None = None


def locate_files(indextts2_dir: str | Path | None, w2v_bert: str | None = None,
                 semantic_codec: str | None = None, *, synthesis: bool = False,
                 bigvgan: str | None = None, campplus: str | None = None) -> IndexTTS2Files:
    """Every file of the stack (with `synthesis`, the synthesiser's too), checked to exist;
    the config checked to be IndexTTS2's (version 2.0). w2v-BERT, the codec, BigVGAN and
    CAMPPlus may be local paths or Hub ids (from the cache). One FileNotFoundError lists
    every missing file with where to get it and its licence."""
    if not indextts2_dir:
        raise ValueError(f"IndexTTS2 needs --indextts2-dir: {_OBTAIN['indextts2']}")
    folder = Path(indextts2_dir)
    config_path = folder / "config.yaml"
    missing: list[str] = []
    config = _load_config(config_path) if config_path.is_file() else None
    if config is None:
        missing.append(f"{config_path} not found: {_OBTAIN['indextts2']}")
        named = {}
    else:
        named = {"gpt": config.gpt_checkpoint, "bpe": config.dataset.bpe_model,
                 "w2v_stats": config.w2v_stat, "s2mel": config.s2mel_checkpoint}
        if synthesis:
            named |= {"emo_matrix": config.emo_matrix, "spk_matrix": config.spk_matrix}
        missing += [f"{folder / name} not found: {_OBTAIN['indextts2']}"
                    for name in named.values() if not (folder / name).is_file()]
    w2v_folder = _find(missing, w2v_bert or DEFAULT_W2V_BERT, ["*.json", "*.safetensors"],
                       None, "w2v_bert")
    codec = _find(missing, semantic_codec or DEFAULT_SEMANTIC_CODEC, [CODEC_FILE], CODEC_FILE,
                  "codec")
    extra = None
    if synthesis:
        vocoder = bigvgan or (config.vocoder.name if config is not None else None)
        vocoder_folder = _find(missing, vocoder, list(BIGVGAN_FILES), None, "bigvgan")
        missing += [f"{vocoder_folder / name} not found: {_OBTAIN['bigvgan']}"
                    for name in BIGVGAN_FILES
                    if vocoder_folder and not (vocoder_folder / name).is_file()]
        speaker = _find(missing, campplus or DEFAULT_CAMPPLUS, [CAMPPLUS_FILE], CAMPPLUS_FILE,
                        "campplus")
        if config is not None:
            extra = SynthesisFiles(bigvgan=vocoder_folder, campplus=speaker,
                                   emo_matrix=folder / named["emo_matrix"],
                                   spk_matrix=folder / named["spk_matrix"],
                                   qwen_emotion=folder / str(config.qwen_emo_path).strip())
    if missing:
        raise FileNotFoundError("IndexTTS2 model files are missing:\n"
                                + "\n".join(f"- {line}" for line in missing))
    return IndexTTS2Files(config_path=config_path, w2v_bert=w2v_folder, semantic_codec=codec,
                          config=config, synthesis=extra,
                          **{key: folder / name for key, name in named.items()
                             if key in ("gpt", "bpe", "w2v_stats", "s2mel")})


def _load_config(config_path: Path):
    from omegaconf import OmegaConf

    config = OmegaConf.load(config_path)
    if str(config.get("version")) != "2.0" or "emo_condition_module" not in config.get("gpt", {}):
        raise ValueError(f"{config_path} is not an IndexTTS2 config (version 2.0 with an "
                         f"emotion conditioning module); its version is {config.get('version')}")
    return config


def _find(missing: list[str], reference: str | None, patterns: list[str], member: str | None,
          what: str) -> Path | None:
    """A model location (local path or Hub id) resolved to a local path, `member` inside it
    when it is a folder; or None, with a line added to `missing`."""
    if not reference:
        missing.append(f"no location given: {_OBTAIN[what]}")
        return None
    try:
        path = local_or_hub(reference, patterns, repo_type="model", hint=f": {_OBTAIN[what]}")
    except FileNotFoundError as error:
        missing.append(" ".join(str(error).split()))  # one line per missing file
        return None
    if member and path.is_dir():
        path = path / member
    if not path.exists():
        missing.append(f"{path} not found: {_OBTAIN[what]}")
        return None
    return path


def semantic_frames(num_samples: int) -> int:
    """50 Hz frames of w2v-BERT for a clip of `num_samples` (16 kHz) plus the 15 ms tail:
    25 ms fbank windows every 10 ms, stacked in pairs."""
    return (1 + (num_samples + TAIL_SAMPLES - 400) // 160) // 2


def text_tokenizer(upstream: types.SimpleNamespace, files: IndexTTS2Files):
    """IndexTTS2's text front end: its normaliser (with the model folder's glossary, when
    there is one) and its SentencePiece model."""
    normaliser = upstream.TextNormalizer(enable_glossary=True)
    glossary = files.config_path.parent / "glossary.yaml"
    if glossary.exists():
        normaliser.load_glossary_from_yaml(str(glossary))
    return upstream.TextTokenizer(str(files.bpe), normaliser)


def load_w2v_stats(path: Path):
    """(mean, std) of w2v-BERT's layer 17 from IndexTTS2's `wav2vec2bert_stats.pt`."""
    import torch

    stats = torch.load(path, map_location="cpu", weights_only=True)
    return stats["mean"].float(), torch.sqrt(stats["var"].float())


def load_semantic_model(folder: Path, device: str):
    """(feature extractor, w2v-BERT with its first 17 layers) from a transformers folder."""
    from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2BertConfig, Wav2Vec2BertModel
    from transformers.utils import logging as hf_logging

    config = Wav2Vec2BertConfig.from_pretrained(folder, local_files_only=True)
    if config.num_hidden_layers < SEMANTIC_LAYER or config.hidden_size != SEMANTIC_DIM:
        raise ValueError(f"{folder}: w2v-BERT 2.0 has {SEMANTIC_DIM}-d hidden states and at "
                         f"least {SEMANTIC_LAYER} layers; this one {config.hidden_size}-d, "
                         f"{config.num_hidden_layers} layers")
    if config.add_adapter or config.use_intermediate_ffn_before_adapter:
        raise ValueError(f"{folder}: this w2v-BERT has an adapter after its layers; IndexTTS2 "
                         "reads layer 17 of the plain encoder (facebook/w2v-bert-2.0)")
    config.num_hidden_layers = SEMANTIC_LAYER
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the unused layers 18+ are reported as unexpected keys
    try:
        model = Wav2Vec2BertModel.from_pretrained(folder, config=config, local_files_only=True,
                                                  dtype="float32")
    finally:
        hf_logging.set_verbosity(verbosity)
    extractor = SeamlessM4TFeatureExtractor.from_pretrained(folder, local_files_only=True)
    return extractor, model.eval().to(device)


def load_gpt(upstream: types.SimpleNamespace, config, gpt_path: Path):
    """IndexTTS2's GPT (`UnifiedVoice`) read strictly from `gpt.pth` (a state dict, or one
    under "model"), tensors only: upstream's `load_checkpoint` unpickles the whole file."""
    import torch

    state = torch.load(gpt_path, map_location="cpu", weights_only=True)
    gpt = upstream.UnifiedVoice(**config.gpt)
    gpt.load_state_dict(state.get("model", state), strict=True)
    return gpt.eval()


def load_gpt_layer(s2mel_path: Path):
    """s2mel's `gpt_layer` (Linear 1280→256→128→1024) read strictly from `s2mel.pth`
    (`{"net": {"gpt_layer": state}}`); the rest of the synthesiser is not built."""
    import torch

    state = torch.load(s2mel_path, map_location="cpu", mmap=True, weights_only=True)["net"]
    if "gpt_layer" not in state:
        raise ValueError(f"{s2mel_path} has no net.gpt_layer: not an IndexTTS2 s2mel checkpoint")
    weights = {key.removeprefix("module."): value for key, value in state["gpt_layer"].items()}
    count = len({key.split(".")[0] for key in weights})
    layers = [torch.nn.Linear(*weights[f"{i}.weight"].shape[::-1]) for i in range(count)]
    projection = torch.nn.Sequential(*layers)
    projection.load_state_dict(weights, strict=True)
    return projection.eval()


def teacher_forced_latents(gpt, gpt_layer, spk_cond, emovec, text_tokens, codes):
    """The `tts_latent` features of one utterance: the GPT run teacher-forced on its text
    tokens (1, L) and semantic codes (1, T) with speaker conditioning latents (1, 32, 1280)
    and an emotion vector (1, 1280) → latents (1, T, 1280), and their `gpt_layer` projection
    (1, T, 1024). Extraction (the clip's own codes) and synthesis (the generated codes) both
    call this, so the face is driven by the features it was trained on."""
    import torch

    one = torch.ones(1, dtype=torch.long, device=codes.device)
    latent = gpt(spk_cond, text_tokens, one * text_tokens.shape[1], codes.long(),
                 one * codes.shape[1], None, emo_vec=emovec, use_speed=one * 0)
    return latent, gpt_layer(latent)


class IndexTTS2Backend:
    """The four IndexTTS2 feature sets from one w2v-BERT pass per batch."""

    same_length = False  # w2v-BERT and the conditioning encoders take true lengths

    def __init__(self, feature_sets: list[str], settings: ExtractSettings) -> None:
        import torch

        logging.getLogger("indextts").setLevel(logging.WARNING)
        self.feature_sets = feature_sets
        self.files = locate_files(settings.indextts2_dir, settings.w2v_bert,
                                  settings.semantic_codec)
        upstream = import_upstream()
        config = self.files.config
        self.device = torch.device(settings.device)
        self.extractor, self.w2v_bert = load_semantic_model(self.files.w2v_bert, settings.device)
        self.mean, self.std = (tensor.to(self.device) for tensor in
                               load_w2v_stats(self.files.w2v_stats))
        from safetensors.torch import load_model

        self.codec = upstream.RepCodec(cfg=config.semantic_codec)
        load_model(self.codec, str(self.files.semantic_codec), strict=True)
        self.codec.eval().to(self.device)
        self.gpt = load_gpt(upstream, config, self.files.gpt).to(self.device)
        self.gpt_layer = load_gpt_layer(self.files.s2mel).to(self.device)
        self.tokenizer = None
        if "tts_latent" in feature_sets:
            self.tokenizer = text_tokenizer(upstream, self.files)
        self.max_text_tokens = int(config.gpt.max_text_tokens)
        self.max_codes = int(config.gpt.max_mel_tokens)

    def extract(self, clips: list[ClipInput]) -> list[dict[str, dict[str, np.ndarray]] | str]:
        """Per clip {feature set: {field: array}}, or the reason it was refused (for every
        set: a clip the GPT cannot take is refused as a whole)."""
        import torch

        tokens = [self.tokenizer.encode(clip.text) if self.tokenizer else [] for clip in clips]
        results: list[Any] = [self._refusal(c, t) for c, t in zip(clips, tokens, strict=True)]
        todo = [i for i, result in enumerate(results) if result is None]
        if not todo:
            return results
        with torch.inference_mode():
            semantic, lengths = self.semantic([clips[i].audio for i in todo])
            prompt = semantic[:, :PROMPT_FRAMES].transpose(1, 2)
            prompt_lengths = lengths.clamp(max=PROMPT_FRAMES)
            spk_cond = self.gpt.get_conditioning(prompt, prompt_lengths)
            emo_cond = self.gpt.get_emo_conditioning(prompt, prompt_lengths)
            emovec = self.gpt.emo_layer(self.gpt.emovec_layer(emo_cond))
            for row, i in enumerate(todo):
                frames = int(lengths[row])
                results[i] = self._clip_features(
                    semantic[row: row + 1, :frames], tokens[i], spk_cond[row: row + 1],
                    emovec[row: row + 1], emo_cond[row])
        return results

    def _refusal(self, clip: ClipInput, tokens: list[int]) -> str | None:
        frames = semantic_frames(len(clip.audio))
        if frames < MIN_FRAMES:
            return f"too_short_for_indextts2: {frames} frames < {MIN_FRAMES}"
        if "tts_latent" not in self.feature_sets:
            return None
        if not tokens:
            return "no_text_tokens: the clip's text gives no IndexTTS2 text tokens"
        if len(tokens) > self.max_text_tokens:
            return (f"text_too_long_for_gpt: {len(tokens)} text tokens > "
                    f"{self.max_text_tokens}")
        if frames > self.max_codes:
            return f"audio_too_long_for_gpt: {frames} codes > {self.max_codes}"
        return None

    def semantic(self, audios: list[np.ndarray]):
        """(B, T, 1024) normalised hidden layer 17 of the padded batch, and true lengths."""

        padded = [np.pad(audio, (0, TAIL_SAMPLES)) for audio in audios]
        inputs = self.extractor(padded, sampling_rate=SAMPLE_RATE, padding=True,
                                return_attention_mask=True, return_tensors="pt")
        mask = inputs["attention_mask"].to(self.device)
        hidden = self.w2v_bert(input_features=inputs["input_features"].to(self.device),
                               attention_mask=mask).last_hidden_state
        lengths = mask.sum(1)
        expected = [semantic_frames(len(audio)) for audio in audios]
        if lengths.tolist() != expected:
            raise RuntimeError(f"w2v-BERT gave {lengths.tolist()} frames, expected {expected}")
        return (hidden - self.mean) / self.std, lengths

    def _clip_features(self, semantic, tokens: list[int], spk_cond, emovec, emo_cond
                       ) -> dict[str, dict[str, np.ndarray]]:
        """One clip's sets: codes from its unpadded features (the codec's convolutions see
        no padding), then the teacher-forced GPT pass (its text and codes are one sequence
        with no attention mask, so clips are not batched)."""
        import torch

        out = {"spk_cond": {"spk_cond.npy": _half(spk_cond[0])},
               "emovec": {"emovec.npy": _half(emovec[0]), "emo_cond.npy": _half(emo_cond)}}
        if {"semantic_codes", "tts_latent"} & set(self.feature_sets):
            codes = self.codec.quantize(semantic)[0].reshape(1, -1)
            out["semantic_codes"] = {"semantic_codes.npy": codes[0].cpu().numpy().astype(np.int16)}
        if "tts_latent" in self.feature_sets:
            text = torch.tensor([tokens], dtype=torch.long, device=self.device)
            latent, projected = teacher_forced_latents(self.gpt, self.gpt_layer, spk_cond,
                                                       emovec, text, codes)
            out["tts_latent"] = {"tts_latent.npy": _half(latent[0]),
                                 "gpt_layer.npy": _half(projected[0])}
        return {name: out[name] for name in self.feature_sets}

    @cached_property
    def model_info(self) -> dict[str, Any]:
        """Model files with sha256 (hashed once, on first use: several GB)."""
        files = self.files
        return {"name": "IndexTTS2 (indextts2-inference classes)",
                "config_version": str(files.config.version),
                "semantic_layer": SEMANTIC_LAYER,
                "files": {path.name: sha256_of(path) for path in
                          (files.config_path, files.gpt, files.bpe, files.w2v_stats,
                           files.s2mel, files.semantic_codec)},
                "w2v_bert_files": folder_hashes(files.w2v_bert)}

    def describe(self) -> dict[str, dict]:
        width = self.gpt.model_dim
        sets = {
            "semantic_codes": {"fields": {"semantic_codes.npy": {"dtype": "int16", "shape": ["T"]}},
                               "frame_rate": 50.0,
                               "dims": int(self.files.config.semantic_codec.codebook_size)},
            "spk_cond": {"fields": {"spk_cond.npy": {
                "dtype": "float16", "shape": [self.gpt.cond_num, width]}},
                "frame_rate": None, "dims": width},
            "emovec": {"fields": {"emovec.npy": {"dtype": "float16", "shape": [width]},
                                  "emo_cond.npy": {"dtype": "float16",
                                                   "shape": [SEMANTIC_DIM]}},
                       "frame_rate": None, "dims": width},
            "tts_latent": {"fields": {"tts_latent.npy": {"dtype": "float16", "shape": ["T", width]},
                                      "gpt_layer.npy": {"dtype": "float16",
                                                        "shape": ["T", self._projection_dim]}},
                           "frame_rate": 50.0, "dims": self._projection_dim,
                           "teacher_forced_on": "the clip's text and its semantic codes"},
        }
        return {name: {"backend": "indextts2", "model": self.model_info, **sets[name],
                       "licences": {model: LICENCES[model] for model in WEIGHTS_USED[name]}}
                for name in self.feature_sets}

    @property
    def _projection_dim(self) -> int:
        return self.gpt_layer[-1].out_features


def _half(tensor) -> np.ndarray:
    return tensor.float().cpu().numpy().astype(np.float16)
