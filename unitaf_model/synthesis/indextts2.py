"""Text → speech and face in one pass: a re-implementation of IndexTTS2's synthesis loop, with
the face a UniTAF run computes from the synthesiser's GPT latents, streamed one text segment
at a time.

The loop re-implements upstream's generator (`indextts2-inference` 2.1.1,
`IndexTTS2.infer_generator`, whose module imports torchaudio and is never imported here) on
upstream's model classes, built and filled by this project's own loaders (for
`weights_only=True`) from the user's files (`locate_files(..., synthesis=True)`): text
normalisation and BPE, segmentation at sentence ends (`max_text_tokens_per_segment`), the
voice prompt's w2v-BERT features, semantic codes, 22.05 kHz mel, CAMPPlus style and s2mel
prompt condition; the emotion vector from the voice, an emotion reference audio (mixed by
`alpha`), eight emotion weights (IndexTTS2's emotion matrices) or the text (its Qwen emotion
model); per segment, the GPT's sampled codes (top-p 0.8, top-k 30, temperature 0.8, 3 beams,
repetition penalty 10), the GPT teacher-forced on those codes, `gpt_layer`, the length
regulator (1.72 mel frames per code), 25 flow-matching steps (CFG 0.7) and BigVGAN; 200 ms
of silence between segments.

The face of each segment comes from the same teacher-forced latents, computed by the function
the `tts_latent` extraction uses (`teacher_forced_latents`) and rounded to float16 as the
extraction stores them, through the caller's `FaceModel` (a trained run: features (T50, D)
→ face (ceil(T50 / 2), C) at `fps`).

Sync contract: the face has `round(samples × fps / 22050)` frames for the wav it comes with,
chunk by chunk, frame i covering [i / fps, (i + 1) / fps) of the whole utterance. Within a
segment the model's frames (two codes each) are stretched onto the segment's wav (BigVGAN
gives 256 samples per mel frame, `floor(1.72 × codes)` mel frames) by linear interpolation;
in each silence the face decays linearly from the segment's last frame to the rest pose,
reaching it after 0.4 s or at the silence's end, whichever is first (the reference UniTAF
streaming code decays over 10 frames at 25 fps).

Streaming: `stream` yields one `Chunk` per segment (its speech, the silence after it, and
their face) as soon as it is computed; `synthesize` is the concatenation of that stream.
Each segment's sampling draws from its own generator state (`seed + segment index`), so a
stream and a whole synthesis are equal whatever the caller does between chunks.

Where this differs from upstream, on purpose: the face features keep the inserted silences
(upstream's non-streaming path concatenates per-segment features without them); the
conditioning encoders get the prompts' true frame counts (upstream passes the feature width,
1024, the same result for prompts up to 15 s); s2mel is loaded strictly (a missing or
mis-shaped weight is an error; upstream skips it with a warning); every checkpoint is read
with `weights_only=True`; no flash-attn, DeepSpeed or CUDA kernels (plain PyTorch attention
through transformers' `generate`); upstream's generation wrapper is handed the KV cache and
attention mask under the names it reads (newer transformers renamed them, and it would
recompute the whole sequence for every code). Emotion from text runs upstream's
`QwenEmotion` on the model folder's `qwen0.6bemo4-merge` (its loader needs `accelerate`).

torchaudio: IndexTTS2's inference module imports it, and no torchaudio loads next to the
torch this project tests with, so that module is never imported. The synthesis path calls
three torchaudio functions; here they are:
- `transforms.Resample(sr, 22050)` and `Resample(sr, 16000)` of the voice prompt: the prompt
  is decoded once and resampled to each rate by librosa (soxr, as `librosa.load` does for
  upstream's emotion prompt and for its first 22.05 kHz resampling), instead of resampling
  the 22.05 kHz signal a second time to 16 kHz;
- `compliance.kaldi.fbank(wav, num_mel_bins=80, dither=0, sample_frequency=16000)` for
  CAMPPlus: kaldi-native-fbank with the same options (Kaldi's algorithm, which torchaudio's
  reimplements), tested against the formulas;
- `torchaudio.save`: soundfile, by the caller.
Nothing is registered under torchaudio's name (the codec import's two mel helpers are offered
only during that import, see `unitaf_data.features.indextts2`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from unitaf_data import schema
from unitaf_data.features.indextts2 import (
    IndexTTS2Files,
    import_upstream,
    load_gpt,
    load_semantic_model,
    load_w2v_stats,
    locate_files,
    teacher_forced_latents,
    text_tokenizer,
)

log = logging.getLogger(__name__)

SAMPLE_RATE = 22050  # s2mel's mel rate × BigVGAN's 256 samples per frame
SEMANTIC_RATE = schema.SAMPLE_RATE  # w2v-BERT and the codec read 16 kHz
HOP_SAMPLES = 256
MEL_FRAMES_PER_CODE = 1.72  # s2mel's length regulator
SILENCE_S = 0.2  # upstream's interval_silence between segments
PROMPT_S = 15.0  # upstream cuts voice and emotion prompts to 15 s
DECAY_S = 0.4  # face decay to the rest pose in a silence
EMOTIONS = ("happy", "angry", "sad", "afraid", "disgusted", "melancholic", "surprised", "calm")
FACE_INPUTS = ("gpt_layer", "tts_latent", "semantic_codes")


@dataclass(frozen=True)
class Generation:
    """Sampling and synthesis settings (upstream's defaults)."""

    top_p: float = 0.8
    top_k: int = 30
    temperature: float = 0.8
    num_beams: int = 3
    repetition_penalty: float = 10.0
    length_penalty: float = 0.0
    max_mel_tokens: int = 1500  # codes per segment (30 s)
    max_text_tokens_per_segment: int = 120
    diffusion_steps: int = 25
    cfg_rate: float = 0.7
    seed: int = 0


@dataclass(frozen=True)
class Emotion:
    """Where the emotion comes from: the voice itself (default), an emotion reference audio
    (`audio`, mixed with the voice's by `alpha`), eight weights in `EMOTIONS` order
    (`vector`, scaled by `alpha`), or the text (`from_text`; `text` or the spoken text)."""

    audio: Path | None = None
    vector: tuple[float, ...] | None = None
    from_text: bool = False
    text: str | None = None
    alpha: float = 1.0

    def __post_init__(self) -> None:
        if sum([self.audio is not None, self.vector is not None, self.from_text]) > 1:
            raise ValueError("give one emotion source: an audio, a vector or the text")
        if self.vector is not None and len(self.vector) != len(EMOTIONS):
            raise ValueError(f"an emotion vector has {len(EMOTIONS)} values "
                             f"({', '.join(EMOTIONS)}), not {len(self.vector)}")


@dataclass
class FaceModel:
    """A run's face path: `face_from_features(features, emovec)` maps one segment's features
    (T50, D) (codes (T50,) for `semantic_codes`) and the emotion vector (1280,) that
    conditioned the speech to its face (ceil(T50 / 2), C) at `fps`; `rest` (C,) is the face
    at rest."""

    face_from_features: Callable[[np.ndarray, np.ndarray], np.ndarray]
    fps: float
    rest: np.ndarray
    feature: str = "gpt_layer"

    def __post_init__(self) -> None:
        if self.feature not in FACE_INPUTS:
            raise ValueError(f"face feature {self.feature!r}: one of {', '.join(FACE_INPUTS)}")


@dataclass
class Conditioning:
    """One voice and emotion, computed once per utterance (upstream's speaker and emotion
    conditioning)."""

    spk_cond_emb: object  # (1, T, 1024) w2v-BERT layer 17 of the voice, normalised
    emo_cond_emb: object  # (1, T, 1024) the same of the emotion reference
    emovec: object  # (1, 1280) the emotion vector the GPT adds to its speaker latents
    style: object  # (1, 192) CAMPPlus style of the voice
    prompt_condition: object  # (1, T_mel, 512) s2mel condition of the voice's codes
    ref_mel: object  # (1, 80, T_mel) the voice's mel


@dataclass
class SegmentSpeech:
    codes: np.ndarray  # int64 (T,)
    latent: np.ndarray  # float16 (T, 1280), as the `tts_latent` extraction stores it
    projected: np.ndarray  # float16 (T, 1024), `gpt_layer`
    wav: np.ndarray  # float32 (samples,) at 22.05 kHz


@dataclass
class Chunk:
    """One segment as streamed: its speech and the silence after it, and their face."""

    index: int
    text: str
    wav: np.ndarray  # float32 (samples,) at SAMPLE_RATE: speech, then silence
    face: np.ndarray  # float32 (frames, C) at the face model's fps
    start_sample: int  # of this chunk in the whole utterance
    speech_samples: int
    first_frame: int  # of this chunk's face in the whole utterance
    speech: SegmentSpeech
    ready_s: float  # seconds from the start of the stream until this chunk was ready
    speech_s: float  # seconds spent on its speech (codes, latents, s2mel, BigVGAN)
    face_s: float  # seconds spent on its face


@dataclass
class Synthesis:
    wav: np.ndarray
    face: np.ndarray
    fps: float
    chunks: list[Chunk] = field(default_factory=list)
    sample_rate: int = SAMPLE_RATE

    @property
    def duration(self) -> float:
        return len(self.wav) / self.sample_rate

    @property
    def first_chunk_s(self) -> float:
        return self.chunks[0].ready_s


class IndexTTS2Synthesizer:
    """IndexTTS2's models, loaded once (`load_synthesizer`)."""

    def __init__(self, files: IndexTTS2Files, device: str = "cpu") -> None:
        import torch

        logging.getLogger("indextts").setLevel(logging.WARNING)
        self.files, self.device = files, torch.device(device)
        self.upstream = upstream = import_upstream(synthesis=True)
        config, extra = files.config, files.synthesis
        self.gpt = load_gpt(upstream, config, files.gpt).to(self.device)
        self.gpt.post_init_gpt2_config(use_deepspeed=False, kv_cache=True, half=False)
        generator = self.gpt.inference_model
        generator.prepare_inputs_for_generation = _cache_under_either_name(
            generator.prepare_inputs_for_generation)
        self.extractor, self.w2v_bert = load_semantic_model(files.w2v_bert, device)
        self.mean, self.std = (t.to(self.device) for t in load_w2v_stats(files.w2v_stats))
        from safetensors.torch import load_model

        self.codec = upstream.RepCodec(cfg=config.semantic_codec)
        load_model(self.codec, str(files.semantic_codec), strict=True)
        self.codec.eval().to(self.device)
        self.s2mel = load_s2mel(upstream, config, files.s2mel).to(self.device)
        self.s2mel.models["cfm"].estimator.setup_caches(max_batch_size=1, max_seq_length=8192)
        self.bigvgan = load_bigvgan(upstream, extra.bigvgan).to(self.device)
        self.campplus = load_campplus(upstream, extra.campplus).to(self.device)
        self.emo_num = [int(n) for n in config.emo_num]
        self.emo_matrix = _load_tensor(extra.emo_matrix).to(self.device).split(self.emo_num)
        self.spk_matrix = _load_tensor(extra.spk_matrix).to(self.device).split(self.emo_num)
        self.tokenizer = text_tokenizer(upstream, files)
        spect = config.s2mel.preprocess_params.spect_params
        self.mel_args = {  # upstream: any fmax but "None" means 8000 Hz
            "n_fft": spect.n_fft, "win_size": spect.win_length, "hop_size": spect.hop_length,
            "num_mels": spect.n_mels, "sampling_rate": config.s2mel.preprocess_params.sr,
            "fmin": spect.get("fmin", 0),
            "fmax": None if str(spect.get("fmax", "None")) == "None" else 8000, "center": False}
        self.stop_code = int(config.gpt.stop_mel_token)
        self._text_emotion = None

    def semantic(self, audio: np.ndarray):
        """(1, T, 1024): IndexTTS2's `get_emb` of 16 kHz audio."""
        import torch

        inputs = self.extractor(audio, sampling_rate=SEMANTIC_RATE, return_tensors="pt")
        with torch.inference_mode():
            hidden = self.w2v_bert(input_features=inputs["input_features"].to(self.device),
                                   attention_mask=inputs["attention_mask"].to(self.device)
                                   ).last_hidden_state
        return (hidden - self.mean) / self.std

    def conditioning(self, voice: Path, emotion: Emotion, text: str) -> Conditioning:
        """Speaker and emotion conditioning for one utterance of `text`."""
        import torch

        audio = read_prompt(voice)
        with torch.inference_mode():
            spk_cond_emb = self.semantic(audio[SEMANTIC_RATE])
            _, s_ref = self.codec.quantize(spk_cond_emb)
            wav_22k = torch.from_numpy(audio[SAMPLE_RATE])[None].to(self.device)
            ref_mel = self.upstream.mel_spectrogram(wav_22k, **self.mel_args)
            fbank = torch.from_numpy(kaldi_fbank(audio[SEMANTIC_RATE])).to(self.device)
            style = self.campplus((fbank - fbank.mean(0, keepdim=True))[None])
            prompt_condition = self.s2mel.models["length_regulator"](
                s_ref, ylens=torch.tensor([ref_mel.shape[2]], device=self.device),
                n_quantizers=3, f0=None)[0]
            emo_cond_emb, alpha = spk_cond_emb, 1.0
            if emotion.audio is not None:
                emo_cond_emb = self.semantic(read_prompt(emotion.audio)[SEMANTIC_RATE])
                alpha = emotion.alpha
            emovec = self.gpt.merge_emovec(spk_cond_emb, emo_cond_emb, _frames(spk_cond_emb),
                                           _frames(emo_cond_emb), alpha=alpha)
            weights = self._emotion_weights(emotion, text)
            if weights is not None:
                emovec = self._mix_emotions(weights, style) + (1 - weights.sum()) * emovec
        return Conditioning(spk_cond_emb, emo_cond_emb, emovec, style, prompt_condition,
                            ref_mel)

    def _emotion_weights(self, emotion: Emotion, text: str):
        import torch

        if emotion.from_text:
            vector = list(self.text_emotion().inference(emotion.text or text).values())
        elif emotion.vector is not None:
            vector = list(emotion.vector)
        else:
            return None
        scale = max(0.0, min(1.0, emotion.alpha))
        if scale != 1.0:  # upstream's scaling, truncated to 4 decimals
            vector = [int(x * scale * 10000) / 10000 for x in vector]
        return torch.tensor(vector, device=self.device)

    def _mix_emotions(self, weights, style):
        """Σ weight_i × the emotion vector of emotion i's reference speaker most like the
        voice (cosine of CAMPPlus styles)."""
        import torch

        nearest = [self.upstream.find_most_similar_cosine(style, speakers)
                   for speakers in self.spk_matrix]
        rows = torch.cat([vectors[i][None] for i, vectors in zip(nearest, self.emo_matrix,
                                                                  strict=True)])
        return (weights[:, None] * rows).sum(0)[None]

    def text_emotion(self):
        """IndexTTS2's Qwen emotion classifier from the model folder, loaded on first use."""
        if self._text_emotion is None:
            folder = self.files.synthesis.qwen_emotion
            if not folder.is_dir():
                raise FileNotFoundError(f"{folder} not found: emotion from text needs "
                                        "IndexTeam/IndexTTS-2's Qwen emotion model (bilibili "
                                        "Model Use License) in --indextts2-dir")
            from indextts.emotion import QwenEmotion

            self._text_emotion = QwenEmotion(str(folder))
        return self._text_emotion

    def segments(self, text: str, max_tokens: int) -> list[list[str]]:
        """The text normalised, BPE-tokenised and cut into segments (upstream's rules)."""
        tokens = self.tokenizer.tokenize(text)
        ids = self.tokenizer.convert_tokens_to_ids(tokens)
        unknown = [t for t, i in zip(tokens, ids, strict=True)
                   if i == self.tokenizer.unk_token_id]
        if unknown:
            log.warning("%d text tokens are unknown to the BPE model: %s", len(unknown),
                        unknown)
        return self.tokenizer.split_segments(tokens, max_tokens)

    def speak(self, tokens: list[str], cond: Conditioning, generation: Generation
              ) -> SegmentSpeech:
        """One segment: sampled codes, their teacher-forced latents, s2mel and BigVGAN."""
        import torch

        text = torch.tensor([self.tokenizer.convert_tokens_to_ids(tokens)], dtype=torch.int32,
                            device=self.device)
        with torch.inference_mode():
            codes, spk_latent = self.gpt.inference_speech(
                cond.spk_cond_emb, text, cond.emo_cond_emb,
                cond_lengths=_frames(cond.spk_cond_emb),
                emo_cond_lengths=_frames(cond.emo_cond_emb), emo_vec=cond.emovec,
                do_sample=True, top_p=generation.top_p, top_k=generation.top_k,
                temperature=generation.temperature, num_return_sequences=1,
                length_penalty=generation.length_penalty, num_beams=generation.num_beams,
                repetition_penalty=generation.repetition_penalty,
                max_generate_length=generation.max_mel_tokens)
            codes = self._until_stop(codes)
            latent, projected = teacher_forced_latents(self.gpt, self.s2mel.models["gpt_layer"],
                                                       spk_latent, cond.emovec, text, codes)
            content = self.codec.quantizer.vq2emb(codes[:, None]).transpose(1, 2) + projected
            mel_frames = (torch.tensor([codes.shape[1]], device=self.device)
                          * MEL_FRAMES_PER_CODE).long()
            condition = self.s2mel.models["length_regulator"](
                content, ylens=mel_frames, n_quantizers=3, f0=None)[0]
            condition = torch.cat([cond.prompt_condition, condition], dim=1)
            mel = self.s2mel.models["cfm"].inference(
                condition, torch.tensor([condition.shape[1]], device=self.device),
                cond.ref_mel, cond.style, None, generation.diffusion_steps,
                inference_cfg_rate=generation.cfg_rate)[:, :, cond.ref_mel.shape[-1]:]
            wav = self.bigvgan(mel.float()).clamp(-1.0, 1.0)
        return SegmentSpeech(codes=codes[0].cpu().numpy(), latent=_half(latent[0]),
                             projected=_half(projected[0]), wav=wav.reshape(-1).cpu().numpy())

    def _until_stop(self, codes):
        """(1, T): the codes before the first stop code (all, when the code limit cut the
        generation short, as upstream warns)."""
        stops = (codes[0] == self.stop_code).nonzero()
        if not len(stops):
            log.warning("generation stopped at the code limit (%d codes)", codes.shape[1])
            return codes
        if int(stops[0]) == 0:
            raise RuntimeError("the GPT generated no speech codes for a segment")
        return codes[:, : int(stops[0])]


def load_synthesizer(indextts2_dir: str | Path, w2v_bert: str | None = None,
                     semantic_codec: str | None = None, bigvgan: str | None = None,
                     campplus: str | None = None, device: str = "cpu") -> IndexTTS2Synthesizer:
    """IndexTTS2 from the user's files: the model folder and the other locations as
    `extract-features` takes them, plus BigVGAN and CAMPPlus (local paths or Hub ids; one
    error lists every missing file with where to get it and its licence)."""
    files = locate_files(indextts2_dir, w2v_bert, semantic_codec, synthesis=True,
                         bigvgan=bigvgan, campplus=campplus)
    return IndexTTS2Synthesizer(files, device)


def stream(synth: IndexTTS2Synthesizer, face_model: FaceModel, text: str, voice: Path,
           emotion: Emotion = Emotion(), generation: Generation = Generation()
           ) -> Iterator[Chunk]:
    """Speech and face of `text` in `voice`, one chunk per segment as soon as it is ready."""
    import torch

    start = time.perf_counter()
    cond = synth.conditioning(Path(voice), emotion, text)
    segments = synth.segments(text, generation.max_text_tokens_per_segment)
    if not segments:
        raise ValueError("the text gives no IndexTTS2 text tokens")
    silence = round(SAMPLE_RATE * SILENCE_S)
    start_sample = 0
    emovec = cond.emovec[0].float().cpu().numpy().astype(np.float16)  # as `emovec` stores it
    devices = [synth.device.index or 0] if synth.device.type == "cuda" else []
    for index, tokens in enumerate(segments):
        began = time.perf_counter()
        with torch.random.fork_rng(devices=devices, device_type=synth.device.type):
            torch.manual_seed(generation.seed + index)
            speech = synth.speak(tokens, cond, generation)
        faced = time.perf_counter()
        gap = silence if index < len(segments) - 1 else 0
        face = chunk_face(face_model.face_from_features(_face_input(speech, face_model.feature),
                                                        emovec),
                          len(speech.codes), len(speech.wav), gap, start_sample,
                          face_model.fps, face_model.rest)
        done = time.perf_counter()
        yield Chunk(index=index, text=synth.tokenizer.sp_model.DecodePieces(tokens),
                    wav=np.concatenate([speech.wav, np.zeros(gap, np.float32)]), face=face,
                    start_sample=start_sample, speech_samples=len(speech.wav),
                    first_frame=round(start_sample * face_model.fps / SAMPLE_RATE),
                    speech=speech, ready_s=done - start, speech_s=faced - began,
                    face_s=done - faced)
        start_sample += len(speech.wav) + gap


def synthesize(synth: IndexTTS2Synthesizer, face_model: FaceModel, text: str, voice: Path,
               emotion: Emotion = Emotion(), generation: Generation = Generation()
               ) -> Synthesis:
    """The whole utterance: the concatenated stream."""
    chunks = list(stream(synth, face_model, text, voice, emotion, generation))
    return Synthesis(wav=np.concatenate([c.wav for c in chunks]),
                     face=np.concatenate([c.face for c in chunks]), fps=face_model.fps,
                     chunks=chunks)


def chunk_face(model_face: np.ndarray, codes: int, speech_samples: int, silence_samples: int,
               start_sample: int, fps: float, rest: np.ndarray) -> np.ndarray:
    """The face frames of one chunk (speech, then silence) starting at `start_sample` of
    the utterance: the frames whose index i has round(start × fps / sr) ≤ i <
    round(end × fps / sr), each the face at its centre (i + 0.5) / fps. In the speech,
    `model_face` (ceil(codes / 2), C; model frame k covers codes 2k and 2k + 1, spread
    evenly over the speech) interpolated linearly; in the silence, a linear decay from the
    last model frame to `rest`."""
    expected = -(-codes // 2)
    if model_face.ndim != 2 or len(model_face) != expected:
        raise ValueError(f"the face model gave {model_face.shape} for {codes} codes; expected "
                         f"({expected}, channels)")
    end = start_sample + speech_samples + silence_samples
    frames = np.arange(round(start_sample * fps / SAMPLE_RATE), round(end * fps / SAMPLE_RATE))
    centres = (frames + 0.5) / fps - start_sample / SAMPLE_RATE  # seconds into the chunk
    speech_s = speech_samples / SAMPLE_RATE
    position = centres / (2 * speech_s / codes) - 0.5  # in model frames
    low = np.clip(np.floor(position), 0, len(model_face) - 1).astype(int)
    high = np.minimum(low + 1, len(model_face) - 1)
    weight = np.clip(position - low, 0.0, 1.0)[:, None]
    face = (1 - weight) * model_face[low] + weight * model_face[high]
    if silence_samples:
        quiet = centres >= speech_s
        decay = min(DECAY_S, silence_samples / SAMPLE_RATE)
        remaining = np.clip(1 - (centres[quiet] - speech_s) / decay, 0.0, 1.0)[:, None]
        face[quiet] = rest + remaining * (model_face[-1] - rest)
    return face.astype(np.float32)


def read_prompt(path: Path) -> dict[int, np.ndarray]:
    """A voice or emotion prompt decoded once (mono) and resampled by librosa (soxr) to
    22.05 kHz and 16 kHz, each cut to its first 15 s, by sample rate (AudioError for a file
    `read_mono` refuses)."""
    import librosa

    from unitaf_data.audio import read_mono

    audio, rate = read_mono(path)
    return {target: librosa.resample(audio, orig_sr=rate, target_sr=target)[
        : int(PROMPT_S * target)].astype(np.float32) for target in (SAMPLE_RATE, SEMANTIC_RATE)}


def kaldi_fbank(audio: np.ndarray) -> np.ndarray:
    """(frames, 80) log mel filterbank of 16 kHz audio as `torchaudio.compliance.kaldi.fbank(
    wav, num_mel_bins=80, dither=0, sample_frequency=16000)` computes it (Kaldi's defaults:
    25 ms povey windows every 10 ms, DC removed, pre-emphasis 0.97, 512-point power
    spectrum, mel bands from 20 Hz to Nyquist, log floored at float32 eps)."""
    import kaldi_native_fbank as knf

    options = knf.FbankOptions()
    options.frame_opts.samp_freq = SEMANTIC_RATE
    options.frame_opts.dither = 0.0
    options.mel_opts.num_bins = 80
    fbank = knf.OnlineFbank(options)
    fbank.accept_waveform(SEMANTIC_RATE, audio.astype(np.float32).tolist())
    fbank.input_finished()
    return np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)])


def load_s2mel(upstream, config, path: Path):
    """s2mel (`MyModel` with `gpt_layer`) from `s2mel.pth` ({"net": {part: state}}): every
    parameter present with its shape (buffers that the config determines may be absent;
    keys the model does not have are ignored, as upstream does)."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)["net"]
    model = upstream.MyModel(config.s2mel, use_gpt_latent=True)
    for name, part in model.models.items():
        if name not in state:
            raise ValueError(f"{path} has no net.{name}: not an IndexTTS2 s2mel checkpoint")
        weights = {key.removeprefix("module."): value for key, value in state[name].items()}
        expected = part.state_dict()
        buffers = {key for key, _ in part.named_buffers()}
        problems = [f"{key} missing" for key in expected
                    if key not in weights and key not in buffers]
        problems += [f"{key} {tuple(weights[key].shape)} != {tuple(value.shape)}"
                     for key, value in expected.items()
                     if key in weights and weights[key].shape != value.shape]
        if problems:
            raise ValueError(f"{path} net.{name} does not fit the config: "
                             + "; ".join(problems[:5]))
        part.load_state_dict({k: v for k, v in weights.items() if k in expected}, strict=False)
    return model.eval()


def load_bigvgan(upstream, folder: Path):
    """BigVGAN from its Hub folder (`config.json`, `bigvgan_generator.pt` = {"generator":
    state}), strictly, with or without weight norm in the file (as upstream's
    `from_pretrained`), weight norm removed for inference."""
    import torch
    from indextts.s2mel.modules.bigvgan.env import AttrDict

    hparams = AttrDict(json.loads((folder / "config.json").read_text()))
    model = upstream.BigVGAN(hparams, use_cuda_kernel=False)
    state = torch.load(folder / "bigvgan_generator.pt", map_location="cpu",
                       weights_only=True)["generator"]
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError:  # a generator saved after removing weight norm
        model.remove_weight_norm()
        model.load_state_dict(state, strict=True)
    model.remove_weight_norm()
    return model.eval()


def load_campplus(upstream, path: Path):
    """CAMPPlus (80 fbank bins → 192-d style) strictly from its state dict."""
    import torch

    model = upstream.CAMPPlus(feat_dim=80, embedding_size=192)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return model.eval()


def _load_tensor(path: Path):
    import torch

    tensor = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(tensor, torch.Tensor) or tensor.ndim != 2:
        raise ValueError(f"{path}: expected one 2-D tensor")
    return tensor.float()


def _cache_under_either_name(prepare: Callable) -> Callable:
    """Upstream's `GPT2InferenceModel.prepare_inputs_for_generation` reads the KV cache as
    `past_key_values` and the running length from the attention mask; newer transformers
    pass the cache as `cache` and drop an all-ones mask, and the GPT then re-reads the whole
    sequence for every generated code (the same codes, in quadratic time). This hands both
    over as upstream reads them (one unpadded text, so the mask is all ones)."""
    import torch

    def prepare_inputs(input_ids, past_key_values=None, cache=None, **kwargs):
        if kwargs.get("attention_mask") is None:
            kwargs["attention_mask"] = torch.ones(input_ids.shape, dtype=torch.long,
                                                  device=input_ids.device)
        return prepare(input_ids, past_key_values=cache if cache is not None else past_key_values,
                       **kwargs)

    return prepare_inputs


def _frames(features):
    import torch

    return torch.tensor([features.shape[1]], device=features.device)


def _face_input(speech: SegmentSpeech, feature: str) -> np.ndarray:
    if feature == "semantic_codes":
        return speech.codes
    return (speech.projected if feature == "gpt_layer" else speech.latent).astype(np.float32)


def _half(tensor) -> np.ndarray:
    return tensor.float().cpu().numpy().astype(np.float16)
