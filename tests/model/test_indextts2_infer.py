"""IndexTTS2 synthesis with the face, end to end on CPU, with random-weight models of the
upstream classes in their released file formats and a random-weight UniTAF face model."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import torch

from indextts2_models import write_random_indextts2

pytestmark = [pytest.mark.e2e,  # random-weight model stacks: the slow lane
              pytest.mark.skipif(importlib.util.find_spec("indextts") is None,
                                 reason="pip install --no-deps indextts2-inference==2.1.1")]

TEXT = "Hello there. The quick brown fox jumps. It is a sunny day."
SEGMENTS = 3  # one per sentence with 20 text tokens per segment
GENERATION = {"max_mel_tokens": 80, "max_text_tokens_per_segment": 20, "diffusion_steps": 4}
FPS = 25.0
CHANNELS = 51


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    return write_random_indextts2(tmp_path_factory.mktemp("indextts2"), size="tiny",
                                  synthesis=True)


@pytest.fixture(scope="module")
def synth(models):
    from unitaf_model.synthesis.indextts2 import load_synthesizer

    return load_synthesizer(**{k: str(v) for k, v in models.items()})


@pytest.fixture(scope="module")
def voice(tmp_path_factory):
    """3 s of a vowel-like tone at 24 kHz (not a rate the synthesiser uses)."""
    path = tmp_path_factory.mktemp("voice") / "voice.wav"
    t = np.arange(3 * 24_000) / 24_000
    tone = sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate((150, 300, 450, 900)))
    sf.write(path, (0.2 * tone * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))).astype(np.float32),
             24_000)
    return path


@pytest.fixture(scope="module")
def face_model():
    """A UniTAF model on `gpt_layer` features (as a run trained on tts_latent/gpt_layer.npy),
    random weights, its zero-initialised heads randomised so the face follows the features."""
    from unitaf_model.model.unitaf import UniTAF
    from unitaf_model.synthesis.indextts2 import FaceModel

    torch.manual_seed(0)
    model = UniTAF("precomputed", 1024, 64, "arkit", CHANNELS, torch.full((CHANNELS,), 0.1))
    for parameter in model.decoder.out_head_dict.parameters():
        torch.nn.init.normal_(parameter, std=0.2)
    model.eval()
    identity = torch.zeros(1, dtype=torch.long)

    def face_from_features(features: np.ndarray, emovec: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(features)[None], identity)[0][0].numpy()

    return FaceModel(face_from_features, fps=FPS, rest=np.full(CHANNELS, 0.1, np.float32))


@pytest.fixture(scope="module")
def whole(synth, face_model, voice):
    from unitaf_model.synthesis.indextts2 import Generation, synthesize

    return synthesize(synth, face_model, TEXT, voice, generation=Generation(**GENERATION))


def test_kaldi_fbank_matches_kaldis_formulas():
    """torchaudio.compliance.kaldi.fbank(num_mel_bins=80, dither=0) written out in numpy."""
    from unitaf_model.synthesis.indextts2 import kaldi_fbank

    audio = (np.random.default_rng(0).standard_normal(12_345) * 0.1).astype(np.float32)
    size, hop, fft, bins = 400, 160, 512, 80
    frames = np.stack([audio[i * hop: i * hop + size]
                       for i in range(1 + (len(audio) - size) // hop)]).astype(np.float64)
    frames -= frames.mean(1, keepdims=True)
    frames -= 0.97 * np.concatenate([frames[:, :1], frames[:, :-1]], axis=1)
    frames *= (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(size) / (size - 1))) ** 0.85
    power = np.abs(np.fft.rfft(frames, fft)) ** 2

    def mel(hz):
        return 1127 * np.log(1 + hz / 700)

    low, high = mel(20.0), mel(8000.0)
    step = (high - low) / (bins + 1)
    left = low + np.arange(bins)[:, None] * step
    centre, right = left + step, left + 2 * step
    bin_mel = mel(16_000 / fft * np.arange(fft // 2))[None]
    banks = np.maximum(0, np.minimum((bin_mel - left) / (centre - left),
                                     (right - bin_mel) / (right - centre)))
    expected = np.log(np.maximum(power @ np.pad(banks, ((0, 0), (0, 1))).T,
                                 np.finfo(np.float32).eps))
    np.testing.assert_allclose(kaldi_fbank(audio), expected, atol=5e-4)


def test_a_prompt_is_resampled_to_both_rates_and_cut_to_15_s(tmp_path):
    from unitaf_model.synthesis.indextts2 import read_prompt

    t = np.arange(16 * 44_100) / 44_100
    sf.write(tmp_path / "prompt.wav", (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
             44_100)
    audio = read_prompt(tmp_path / "prompt.wav")
    for rate in (22_050, 16_000):
        assert len(audio[rate]) == 15 * rate
        middle = np.arange(rate, 2 * rate)
        np.testing.assert_allclose(audio[rate][middle],
                                   0.5 * np.sin(2 * np.pi * 440 * middle / rate), atol=2e-3)


def test_each_segments_face_lines_up_with_its_wav_and_decays_to_rest_in_the_silences(
        whole, face_model):
    from unitaf_model.synthesis.indextts2 import SAMPLE_RATE

    assert len(whole.chunks) == SEGMENTS
    assert len(whole.face) == round(len(whole.wav) * FPS / SAMPLE_RATE)
    assert whole.face.shape[1] == CHANNELS
    silence = round(0.2 * SAMPLE_RATE)
    for chunk in whole.chunks:
        codes = len(chunk.speech.codes)
        last = chunk.index == SEGMENTS - 1
        end = chunk.start_sample + len(chunk.wav)
        assert chunk.speech_samples == int(codes * 1.72) * 256
        assert len(chunk.wav) == chunk.speech_samples + (0 if last else silence)
        assert chunk.first_frame == round(chunk.start_sample * FPS / SAMPLE_RATE)
        assert len(chunk.face) == round(end * FPS / SAMPLE_RATE) - chunk.first_frame
        np.testing.assert_array_equal(
            whole.face[chunk.first_frame: chunk.first_frame + len(chunk.face)], chunk.face)
        # the boundary in the whole wav: speech up to start + speech_samples, then zeros
        speech_end = chunk.start_sample + chunk.speech_samples
        assert np.abs(whole.wav[speech_end - 256: speech_end]).max() > 0
        assert not whole.wav[speech_end: end].any()
        # speech frames: the model's frames placed at the times of their codes
        model_face = face_model.face_from_features(chunk.speech.projected.astype(np.float32),
                                                   None)
        code_s = chunk.speech_samples / SAMPLE_RATE / codes
        model_times = (2 * np.arange(len(model_face)) + 1) * code_s
        centres = (chunk.first_frame + np.arange(len(chunk.face)) + 0.5) / FPS \
            - chunk.start_sample / SAMPLE_RATE
        speaking = centres < chunk.speech_samples / SAMPLE_RATE
        expected = np.stack([np.interp(centres[speaking], model_times, model_face[:, c])
                             for c in range(CHANNELS)], axis=1)
        np.testing.assert_allclose(chunk.face[speaking], expected, atol=1e-5)
        if not last:  # the silence: a line from the last model frame to rest over its 0.2 s
            assert (~speaking).sum() in (4, 5, 6)
            into = centres[~speaking] - chunk.speech_samples / SAMPLE_RATE
            line = face_model.rest + (1 - into / 0.2)[:, None] * (model_face[-1]
                                                                  - face_model.rest)
            np.testing.assert_allclose(chunk.face[~speaking], line, atol=1e-5)


def test_streaming_equals_the_whole_synthesis_and_the_first_chunk_comes_first(
        synth, face_model, voice, whole):
    """`synthesize` concatenates `stream`, so their equality alone would hold by
    construction; what can fail is checked too: each streamed segment equals that sentence
    synthesised alone with the seed of its position, so a chunk depends on nothing that
    came before it (not on earlier segments, nor on the caller's use of the generator)."""
    from unitaf_model.synthesis.indextts2 import Generation, stream

    chunks = []
    for chunk in stream(synth, face_model, TEXT, voice, generation=Generation(**GENERATION)):
        chunks.append(chunk)
        torch.rand(1000)  # the caller's own use of the random generator changes nothing
    np.testing.assert_array_equal(np.concatenate([c.wav for c in chunks]), whole.wav)
    np.testing.assert_array_equal(np.concatenate([c.face for c in chunks]), whole.face)
    sentences = ["Hello there.", "The quick brown fox jumps.", "It is a sunny day."]
    for index, (chunk, sentence) in enumerate(zip(chunks, sentences, strict=True)):
        (alone,) = stream(synth, face_model, sentence, voice, generation=Generation(
            **{**GENERATION, "seed": index}))
        np.testing.assert_array_equal(chunk.speech.codes, alone.speech.codes)
        np.testing.assert_array_equal(chunk.speech.wav, alone.speech.wav)
        np.testing.assert_array_equal(chunk.wav[: chunk.speech_samples], alone.wav)
    ready = [c.ready_s for c in chunks]
    assert ready == sorted(ready) and 0 < chunks[0].ready_s < ready[-1]
    assert all(c.speech_s > 0 and c.face_s >= 0 for c in chunks)


def test_the_face_features_are_the_tts_latent_extraction_of_the_generated_codes(
        synth, models, voice, whole):
    """The features the face was computed from equal, within float16 rounding, upstream's
    calls as `infer_generator` makes them (the GPT forward pass with the emotion reference's
    conditioning, s2mel's `gpt_layer`) on the generated codes; and the `tts_latent`
    extraction (the feature backend's GPT and `gpt_layer`, loaded separately from the same
    files) gives the same values on those codes."""
    from unitaf_data.features import ExtractSettings, make_backend
    from unitaf_data.features.indextts2 import teacher_forced_latents
    from unitaf_model.synthesis.indextts2 import Emotion

    backend = make_backend("indextts2", ["tts_latent"], ExtractSettings(
        dataset_dir=models["indextts2_dir"],
        **{k: str(models[k]) for k in ("indextts2_dir", "w2v_bert", "semantic_codec")}))
    cond = synth.conditioning(voice, Emotion(), TEXT)
    segments = synth.segments(TEXT, GENERATION["max_text_tokens_per_segment"])
    for chunk, tokens in zip(whole.chunks, segments, strict=True):
        text = torch.tensor([backend.tokenizer.convert_tokens_to_ids(tokens)])
        codes = torch.from_numpy(chunk.speech.codes)[None]
        frames = torch.tensor([cond.spk_cond_emb.shape[1]])
        with torch.inference_mode():
            spk_latent = backend.gpt.get_conditioning(cond.spk_cond_emb.transpose(1, 2), frames)
            latent, projected = teacher_forced_latents(backend.gpt, backend.gpt_layer,
                                                       spk_latent, cond.emovec, text, codes)
            upstream = synth.gpt(spk_latent, text, torch.tensor([text.shape[1]]), codes,
                                 torch.tensor([codes.shape[1]]), cond.emo_cond_emb,
                                 cond_mel_lengths=frames, emo_cond_mel_lengths=frames,
                                 emo_vec=cond.emovec, use_speed=torch.zeros(1, dtype=torch.long))
            upstream_projected = synth.s2mel.models["gpt_layer"](upstream)
        assert chunk.speech.latent.dtype == chunk.speech.projected.dtype == np.float16
        for ours, theirs in ((chunk.speech.latent, upstream), (chunk.speech.projected,
                                                               upstream_projected),
                             (latent[0].numpy(), upstream), (projected[0].numpy(),
                                                             upstream_projected)):
            np.testing.assert_allclose(ours.astype(np.float32), theirs[0].numpy(), atol=2e-3,
                                       rtol=2e-3)


def test_an_emotion_vector_mixes_the_nearest_emotion_speakers_vectors(synth, models, voice):
    """IndexTTS2's emotion-vector formula, from the emotion matrices on disk."""
    from unitaf_model.synthesis.indextts2 import Emotion

    weights = (0.4, 0, 0, 0.2, 0, 0, 0, 0)
    base = synth.conditioning(voice, Emotion(), TEXT)
    mixed = synth.conditioning(voice, Emotion(vector=weights), TEXT)
    folder = models["indextts2_dir"]
    styles = torch.load(folder / "feat1.pt", weights_only=True).split(synth.emo_num)
    vectors = torch.load(folder / "feat2.pt", weights_only=True).split(synth.emo_num)
    expected = (1 - sum(weights)) * base.emovec
    for weight, speakers, rows in zip(weights, styles, vectors, strict=True):
        nearest = torch.nn.functional.cosine_similarity(base.style, speakers).argmax()
        expected = expected + weight * rows[nearest]
    torch.testing.assert_close(mixed.emovec, expected)


def test_an_emotion_audio_is_mixed_with_the_voices_emotion_by_alpha(synth, voice, tmp_path):
    from unitaf_model.synthesis.indextts2 import Emotion, read_prompt

    other = tmp_path / "angry.wav"
    sf.write(other, (np.random.default_rng(1).standard_normal(32_000) * 0.3).astype(np.float32),
             16_000)
    mixed = synth.conditioning(voice, Emotion(audio=other, alpha=0.25), TEXT)
    voice_only = synth.conditioning(voice, Emotion(), TEXT)
    with torch.inference_mode():
        emotion = synth.semantic(read_prompt(other)[16_000])
        target = synth.gpt.get_emovec(emotion, torch.tensor([emotion.shape[1]]))
    torch.testing.assert_close(mixed.emovec,
                               voice_only.emovec + 0.25 * (target - voice_only.emovec))
    with pytest.raises(ValueError, match="8 values"):
        Emotion(vector=(1.0, 0.0))


def test_generation_reads_one_new_code_per_step_from_the_kv_cache(synth, voice):
    from unitaf_model.synthesis.indextts2 import Emotion

    lengths = []
    hook = synth.gpt.inference_model.transformer.register_forward_hook(
        lambda module, args, kwargs, out: lengths.append(kwargs["inputs_embeds"].shape[1]),
        with_kwargs=True)
    cond = synth.conditioning(voice, Emotion(), TEXT)
    text = torch.tensor([synth.tokenizer.convert_tokens_to_ids(synth.segments("Hello.", 20)[0])])
    torch.manual_seed(0)
    try:
        with torch.inference_mode():
            codes, _ = synth.gpt.inference_speech(
                cond.spk_cond_emb, text, cond.emo_cond_emb, emo_vec=cond.emovec, do_sample=True,
                num_beams=3, max_generate_length=12)
    finally:
        hook.remove()
    assert len(lengths) == codes.shape[1] and set(lengths[1:]) == {1}
    assert lengths[0] > 32  # the prompt: 32 speaker latents, 2 speed embeddings, the text


def test_missing_files_are_listed_in_one_error_with_where_to_get_them(models, tmp_path,
                                                                     hub_offline):
    from unitaf_model.synthesis.indextts2 import load_synthesizer

    folder = tmp_path / "IndexTTS-2"
    shutil.copytree(models["indextts2_dir"], folder)
    (folder / "s2mel.pth").unlink()
    (folder / "feat2.pt").unlink()
    with pytest.raises(FileNotFoundError) as error:
        load_synthesizer(folder, str(models["w2v_bert"]), str(models["semantic_codec"]),
                         bigvgan=str(tmp_path / "no-vocoder"), campplus="funasr/campplus")
    lines = str(error.value).splitlines()
    assert lines[0] == "IndexTTS2 model files are missing:" and len(lines) == 5
    assert any("s2mel.pth not found" in line and "bilibili Model Use License" in line
               for line in lines)
    assert any("feat2.pt not found" in line for line in lines)
    assert any("no-vocoder" in line and "MIT" in line and "--bigvgan" in line for line in lines)
    assert any("funasr/campplus" in line and "FunASR Model License" in line
               and "--campplus" in line for line in lines)


def test_an_s2mel_checkpoint_missing_a_weight_is_refused(synth, models, tmp_path):
    from unitaf_model.synthesis.indextts2 import load_s2mel

    state = torch.load(models["indextts2_dir"] / "s2mel.pth", weights_only=True)
    del state["net"]["cfm"]["estimator.x_embedder.bias"]
    torch.save(state, tmp_path / "s2mel.pth")
    with pytest.raises(ValueError, match="net.cfm .*estimator.x_embedder.bias missing"):
        load_s2mel(synth.upstream, synth.files.config, tmp_path / "s2mel.pth")


def test_loading_the_synthesiser_leaves_no_torchaudio_stand_in_behind(synth):
    assert all(not name.startswith("torchaudio") or getattr(module, "__file__", None)
               for name, module in list(sys.modules.items()))


def test_the_face_model_gets_the_emotion_vector_that_conditioned_the_speech(synth, voice,
                                                                           face_model):
    from unitaf_model.synthesis.indextts2 import Emotion, FaceModel, Generation, stream

    seen = []

    def recording(features: np.ndarray, emovec: np.ndarray) -> np.ndarray:
        seen.append(emovec)
        return face_model.face_from_features(features, emovec)

    text = "Hello there. It is a sunny day."
    chunks = list(stream(synth, FaceModel(recording, FPS, face_model.rest), text, voice,
                         generation=Generation(**GENERATION)))
    expected = synth.conditioning(voice, Emotion(), text).emovec[0].float().numpy()
    assert len(seen) == len(chunks) >= 1
    for emovec in seen:
        np.testing.assert_array_equal(emovec, expected.astype(np.float16))


def test_a_runs_expression_residual_reads_the_emotion_vector_of_the_speech(tmp_path):
    from runs import write_random_run
    from unitaf_model.run import load_run
    from unitaf_model.synthesis.speak import face_model

    front_end = {"backend": "indextts2", "set": "tts_latent", "field": "gpt_layer.npy"}
    run = load_run(write_random_run(tmp_path / "run", "precomputed", 1024, "tts_latent",
                                    "gpt_layer.npy", front_end,
                                    emotion=("emovec", "emovec.npy", 1280)))
    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 1024)).astype(np.float16)
    calm, other = rng.normal(size=(2, 1280)).astype(np.float16)
    model = face_model(run)
    np.testing.assert_array_equal(model.face_from_features(features, other),
                                  run.predict(features, emotion=other))
    moved = np.abs(model.face_from_features(features, other)
                   - model.face_from_features(features, calm)).max(0)
    channels = run.info.model.channels
    assert moved.max() > 0 and {channels[i] for i in np.flatnonzero(moved)} <= set(
        run.info.expression.channels)
    offline = load_run(write_random_run(tmp_path / "offline", "precomputed", 1024,
                                        "tts_latent", "gpt_layer.npy", front_end,
                                        emotion=("utterance", "utterance.npy", 768)))
    with pytest.raises(ValueError, match="emovec"):
        face_model(offline)


@pytest.mark.e2e
def test_unitaf_infer_writes_speech_and_a_face_in_sync_from_a_tts_latent_run(models, voice,
                                                                             tmp_path):
    from livelink_receiver import Receiver
    from typer.testing import CliRunner

    from runs import write_random_run
    from unitaf_cli.main_app import app
    from unitaf_data.face import ARKIT51_UNITALKER

    run = write_random_run(tmp_path / "run", "precomputed", 1024, "tts_latent",
                           "gpt_layer.npy", {"backend": "indextts2", "set": "tts_latent"})
    out = tmp_path / "out"
    locations = [f"--{key.replace('_', '-')}={value}" for key, value in models.items()]
    receiver = Receiver()
    try:
        receiver.start(1, timeout=600)  # the first datagram's arrival; the rest afterwards
        started = time.time()
        result = CliRunner().invoke(app, [
            "infer", "--run", str(run), "--text", TEXT, "--out", str(out), "--voice",
            str(voice), "--stream", "--segment-tokens", "20", *locations,
            "--livelink", f"127.0.0.1:{receiver.port}", "--subject", "Test"])
        assert result.exit_code == 0, result.output
        first = receiver.join()[0]
        face = np.load(out / "speech.npy")
        receiver.start(len(face))
        packets = [first, *receiver.join()[1:]]
    finally:
        receiver.close()
    assert "segment 2" in result.output and "ready after" in result.output
    audio, rate = sf.read(out / "speech.wav")
    assert rate == 22050 and face.shape == (round(len(audio) / rate * 30), CHANNELS)
    for suffix in ("csv", "livelink.csv", "a2f.json", "glb", "usd"):
        assert (out / f"speech.{suffix}").stat().st_size > 0
    # --stream: every frame, in order, with the .npy's values; the first left with the first
    # segment, before the last segment was ready
    assert [p["frame"] for p in packets] == list(range(len(face)))
    assert {p["subject"] for p in packets} == {"Test"}
    jaw = [p["values"]["JawOpen"] for p in packets]
    np.testing.assert_allclose(jaw, np.clip(face[:, ARKIT51_UNITALKER.index("JawOpen")], 0, 1),
                               atol=1e-7)
    last_ready = max(float(line.rsplit("after ", 1)[1].split(" s")[0])
                     for line in result.output.splitlines() if "ready after" in line)
    assert receiver.got[0][0] - started < last_ready


def test_unitaf_infer_refuses_a_run_of_audio_features_naming_the_espeak_path(tmp_path):
    from typer.testing import CliRunner

    from runs import write_random_run
    from unitaf_cli.main_app import app

    run = write_random_run(tmp_path / "run", "units", 16, "units", "units.npy",
                           {"backend": "offline", "set": "units"})
    result = CliRunner().invoke(app, ["infer", "--run", str(run), "--text", "hi", "--out",
                                      str(tmp_path / "out"), "--voice", "v.wav",
                                      "--indextts2-dir", str(tmp_path)])
    assert result.exit_code == 2 and "--tts espeak" in result.output


def _torchaudio_stand_in():
    """The three torchaudio calls of upstream's synthesis path, as the loop makes them:
    `transforms.Resample` by librosa's resampler (soxr), `compliance.kaldi.fbank` by
    `kaldi_fbank`; `save` is never reached (no output path)."""
    import types

    import librosa

    from unitaf_model.synthesis.indextts2 import kaldi_fbank

    class Resample:
        def __init__(self, orig_freq: int, new_freq: int) -> None:
            self.rates = (orig_freq, new_freq)

        def __call__(self, audio: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(librosa.resample(audio.numpy(), orig_sr=self.rates[0],
                                                     target_sr=self.rates[1]))

    def fbank(wav, num_mel_bins, dither, sample_frequency):
        assert (num_mel_bins, dither, sample_frequency) == (80, 0, 16000)
        return torch.from_numpy(kaldi_fbank(wav[0].numpy()))

    def save(*args, **kwargs):
        raise AssertionError("upstream saved a file: the comparison passes no output path")

    kaldi = types.ModuleType("torchaudio.compliance.kaldi")
    kaldi.fbank = fbank
    compliance = types.ModuleType("torchaudio.compliance")
    compliance.kaldi = kaldi
    transforms = types.ModuleType("torchaudio.transforms")
    transforms.Resample = Resample
    module = types.ModuleType("torchaudio")
    module.transforms, module.compliance, module.save = transforms, compliance, save
    return {"torchaudio": module, "torchaudio.transforms": transforms,
            "torchaudio.compliance": compliance, "torchaudio.compliance.kaldi": kaldi}


def _upstream_tts(synth, infer_v2):
    """Upstream's IndexTTS2 object holding the models the loop loaded (the same objects),
    with the attributes its `__init__` would set (which downloads from the Hub and
    unpickles checkpoints, so it is not run)."""
    from indextts.s2mel.modules.audio import mel_spectrogram

    tts = object.__new__(infer_v2.IndexTTS2)
    vars(tts).update(
        device="cpu", dtype=None, use_fp16=False, use_accel=False, use_torch_compile=False,
        use_cuda_kernel=False, cfg=synth.files.config, stop_mel_token=synth.stop_code,
        gpt=synth.gpt, extract_features=synth.extractor, semantic_model=synth.w2v_bert,
        semantic_mean=synth.mean, semantic_std=synth.std, semantic_codec=synth.codec,
        s2mel=synth.s2mel, campplus_model=synth.campplus, bigvgan=synth.bigvgan,
        tokenizer=synth.tokenizer, emo_matrix=synth.emo_matrix, spk_matrix=synth.spk_matrix,
        emo_num=synth.emo_num, qwen_emo=None,
        mel_fn=lambda x: mel_spectrogram(x, **synth.mel_args))
    tts._init_cache()
    return tts


def test_the_synthesis_loop_equals_upstreams_generator_on_the_same_weights_and_seed(
        synth, face_model, tmp_path, monkeypatch):
    """Upstream's own generator, `IndexTTS2.infer_generator` of indextts2-inference 2.1.1
    (its code, run as written), against this project's loop (`stream`), on the same
    random-weight models and seed, for a one-segment sentence and a 22.05 kHz voice: the
    generated codes, the GPT latents behind the face and the waveform are equal.

    What is not upstream's in this comparison: (1) its module imports torchaudio, which
    does not load next to this torch, so three torchaudio calls are stand-ins during the
    import and the call (`transforms.Resample` by librosa's soxr resampler, an identity
    at 22.05 kHz and 22.05 → 16 kHz as the loop resamples; `compliance.kaldi.fbank` by the
    loop's `kaldi_fbank`, checked against Kaldi's formulas above; `save` not reached); (2)
    the IndexTTS2 object is not built by its `__init__`: it holds the models the loop
    loaded (the same objects: w2v-BERT cut after layer 17, whose `hidden_states[17]`
    upstream reads; the KV-cache shim the loop installs on the GPT's generation wrapper).
    Not compared: texts of several segments (the loop seeds each segment with seed +
    index, upstream draws all segments from one generator), voices at other rates
    (upstream resamples 22.05 kHz audio to 16 kHz, the loop the decoded audio), emotion
    from text (Qwen)."""
    import soundfile as sf

    from unitaf_model.synthesis.indextts2 import Generation, stream

    t = np.arange(2 * 22_050) / 22_050
    voice = tmp_path / "voice22k.wav"
    sf.write(voice, (0.2 * np.sin(2 * np.pi * 180 * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))
                     ).astype(np.float32), 22_050)
    sentence = "The quick brown fox jumps."
    settings = {**GENERATION, "diffusion_steps": 25}  # upstream's, fixed in its code
    (ours,) = stream(synth, face_model, sentence, voice, generation=Generation(**settings))
    before = set(sys.modules)
    for name, module in _torchaudio_stand_in().items():
        monkeypatch.setitem(sys.modules, name, module)
    try:
        import indextts.infer_v2 as infer_v2

        tts = _upstream_tts(synth, infer_v2)
        captured = {}
        forward = synth.gpt.forward

        def keep_latent(*args, **kwargs):  # upstream's teacher-forced pass, recorded
            captured["latent"] = forward(*args, **kwargs)
            return captured["latent"]

        monkeypatch.setattr(synth.gpt, "forward", keep_latent)
        torch.manual_seed(Generation().seed)
        with torch.inference_mode():
            wavs = list(tts.infer_generator(
                str(voice), sentence, None, stream_return=True,
                max_text_tokens_per_segment=settings["max_text_tokens_per_segment"],
                max_mel_tokens=settings["max_mel_tokens"]))
    finally:
        for name in set(sys.modules) - before:
            sys.modules.pop(name, None)
    upstream_wav = wavs[0][0].numpy()
    assert len(captured["latent"][0]) == len(ours.speech.codes)
    np.testing.assert_allclose(ours.speech.latent.astype(np.float32),
                               captured["latent"][0].numpy(), atol=2e-3, rtol=2e-3)
    assert len(upstream_wav) == len(ours.speech.wav)
    np.testing.assert_allclose(ours.speech.wav, upstream_wav, atol=1e-5)
