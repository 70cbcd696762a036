"""The demo corpus: synthetic speech with a face track driven by the speech's own phonemes.

No real audio-to-face corpus can be downloaded on a fresh machine, so the toolkit makes a
small one. Speech comes from eSpeak NG (GPL-3.0, loaded at run time from the optional
`espeakng-loader` wheel; nothing of it is shipped). Speakers are eSpeak voices with their own
rate and pitch; emotions are prosody settings (rate, pitch, pitch range, volume) plus a facial
expression. The face is ARKit-51 in UniTalker channel order at 30 fps, built from the
synthesiser's phoneme events: bilabials (p, b, m) close the lips, open vowels open the jaw,
rounded vowels pucker and funnel, and dominance-function blending (Cohen & Massaro) gives
smooth coarticulation; blinks and slow brow and smile motion are added on top.

Corpus tree written by `prepare(corpus_dir, minutes, seed)`:

    corpus.json                 settings and one entry per recording
    {recording}.wav             22.05 kHz mono 16-bit speech
    {recording}.face.npy        float32 (T, 51) at 30 fps, frame i covers [i/30, (i+1)/30)
    {recording}.timeline.json   phonemes, words and sentences with start/end seconds

Everything is deterministic given the seed. Licence of the output: the corpus is generated
locally by each user; it contains no third-party data.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from unitaf_data.audio import load_audio
from unitaf_data.conditions import Conditions, apply_conditions, draw_conditions
from unitaf_data.dataset import Location, Storage, check_key, is_url
from unitaf_data.face import ARKIT51
from unitaf_data.phones import phones_from_events
from unitaf_data.schema import SAMPLE_RATE, Recording, RecordingRef, Word
from unitaf_data.sources import (
    DEFAULT_OPTIONS,
    SourceOptions,
    corpus_extra,
    corpus_path,
    corpus_storage,
    input_files,
)
from unitaf_data.sources.demo_piper import VOICE_NAME as PIPER_VOICE
from unitaf_data.sources.demo_piper import speak as speak_piper
from unitaf_data.sources.demo_sentences import held_out_sentences as held_out_sentences
from unitaf_data.sources.demo_sentences import sentence_splits

NAME = "demo"
FPS = 30.0
CORPUS_VERSION = 2  # 2: sentence pool split by sentence, a held-out speaker, conditions
RECORDING_TARGET_SECONDS = 15.0

SPEAKERS = (  # speaker id, eSpeak voice, base rate (words/min), base pitch (0-100)
    ("spk01", "en-us+m1", 170, 42),
    ("spk02", "en-us+Annie", 165, 55),
    ("spk03", "en-us+m4", 160, 40),
    ("spk04", "en-us+steph", 160, 60),
    ("spk05", "en-us+f3", 165, 50),  # held out: speaks only in the test_speaker split
)
HELD_OUT_SPEAKER = "spk05"
PIPER_SPEAKER = "spk06"  # Piper's en_US-joe-medium voice (`demo_piper`), a seen speaker
SEEN_SPEAKERS = (*(name for name, *_ in SPEAKERS if name != HELD_OUT_SPEAKER), PIPER_SPEAKER)
SENTENCES_PER_RECORDING = 4
CONDITIONS_SHARE = 0.5  # of train recordings: noise, level, channel, reverb, long edges
BABBLE_VOICES = ("en-us+m2", "en-us+f2", "en-us+m7", "en-us+f4")

EMOTIONS = {  # rate factor, pitch offset, pitch range, volume, expression channels
    "neutral": (1.00, 0, 50, 100, {}),
    "happy": (1.08, 10, 80, 110, {"MouthSmileLeft": 0.35, "MouthSmileRight": 0.35,
                                   "CheekSquintLeft": 0.2, "CheekSquintRight": 0.2}),
    "sad": (0.92, -8, 35, 90, {"MouthFrownLeft": 0.3, "MouthFrownRight": 0.3,
                                 "BrowInnerUp": 0.35}),
    "angry": (1.12, 4, 70, 140, {"BrowDownLeft": 0.45, "BrowDownRight": 0.45,
                                  "NoseSneerLeft": 0.25, "NoseSneerRight": 0.25}),
    "surprised": (1.00, 18, 95, 110, {"BrowInnerUp": 0.4, "BrowOuterUpLeft": 0.45,
                                       "BrowOuterUpRight": 0.45, "EyeWideLeft": 0.35,
                                       "EyeWideRight": 0.35}),
}


@dataclass(frozen=True)
class DemoRecordingPlan:
    recording: str
    speaker: str
    voice: str
    emotion: str
    split: str
    rate: int
    pitch: int
    range: int
    volume: int
    sentences: tuple[str, ...]
    pauses: tuple[float, ...]  # silence before each sentence, and one after the last
    conditions: Conditions = Conditions()  # what the clean speech is put through
    engine: str = "espeak"  # the synthesiser that speaks it (recorded as the clip's `voice`)


def plan_corpus(minutes: float, seed: int) -> list[DemoRecordingPlan]:
    """Deterministic plan: ~15 s recordings of four sentences each.

    Splits are per recording and by sentence: each split speaks only its own sentences
    (`demo_sentences`). With four or more recordings, 10 % (at least one) go to each of
    `val` and `test` (seen speakers) and `test_speaker` (the held-out speaker, who speaks
    nowhere else); with three, one each to val and test. Within a split, speakers and
    emotions cycle, so a split of five or more recordings has every emotion. Half of the
    train recordings get seeded recording conditions (noise, level, channel, reverb, long
    noise-only edges); held-out splits stay clean (eval adds conditions itself).
    """
    from unitaf_data.espeak import Prosody

    rng = np.random.default_rng(seed)
    count = max(1, math.ceil(minutes * 60.0 / RECORDING_TARGET_SECONDS))
    splits = _assign_splits(count, rng)
    pools = {split: list(rng.permutation(sentences))
             for split, sentences in sentence_splits().items()}
    emotions, seen_in_split, plans = list(EMOTIONS), {}, []
    for i, split in enumerate(splits):
        j = seen_in_split[split] = seen_in_split.get(split, -1) + 1
        speakers = (HELD_OUT_SPEAKER,) if split == "test_speaker" else SEEN_SPEAKERS
        speaker = speakers[(j + j // len(emotions)) % len(speakers)]
        emotion = emotions[j % len(emotions)]
        voice = speaker_prosody(speaker, emotion) if speaker != PIPER_SPEAKER else \
            Prosody(PIPER_VOICE, 0, 0, 0, 0)  # Piper has its own prosody
        pool = pools[split]
        chosen = tuple(str(pool[(j * SENTENCES_PER_RECORDING + k) % len(pool)])
                       for k in range(SENTENCES_PER_RECORDING))
        pauses = [round(float(p), 3) for p in rng.uniform(0.45, 0.9, size=len(chosen) + 1)]
        conditions = Conditions(lead_s=pauses[0], tail_s=pauses[-1])
        if split == "train" and speaker != PIPER_SPEAKER and rng.random() < CONDITIONS_SHARE:
            lead, tail = (float(x) for x in rng.uniform(0.8, 2.5, size=2))
            conditions = draw_conditions(rng, lead, tail)
            pauses[0], pauses[-1] = conditions.lead_s, conditions.tail_s
        plans.append(DemoRecordingPlan(
            recording=f"rec{i:04d}", speaker=speaker, voice=voice.voice, emotion=emotion,
            split=split, rate=voice.rate, pitch=voice.pitch, range=voice.range,
            volume=voice.volume, sentences=chosen, pauses=tuple(pauses),
            conditions=conditions, engine="piper" if speaker == PIPER_SPEAKER else "espeak",
        ))
    return plans


def speaker_prosody(speaker: str, emotion: str):
    """The eSpeak voice and prosody of a demo speaker speaking with an emotion."""
    from unitaf_data.espeak import Prosody

    if speaker == PIPER_SPEAKER:
        raise ValueError(f"{speaker} is spoken by Piper's {PIPER_VOICE} voice, not eSpeak: "
                         "use --tts piper")
    voices = {name: (voice, rate, pitch) for name, voice, rate, pitch in SPEAKERS}
    if speaker not in voices or emotion not in EMOTIONS:
        raise ValueError(f"demo speakers are {', '.join(voices)} and emotions "
                         f"{', '.join(EMOTIONS)}, not {speaker!r} / {emotion!r}")
    voice, base_rate, base_pitch = voices[speaker]
    rate_factor, pitch_offset, pitch_range, volume, _ = EMOTIONS[emotion]
    return Prosody(voice, round(base_rate * rate_factor),
                   int(np.clip(base_pitch + pitch_offset, 0, 100)), pitch_range, volume)


def speak(text: str, speaker: str = "spk01", emotion: str = "neutral"
          ) -> tuple[np.ndarray, int]:
    """(audio, sample rate) of any `text` spoken by eSpeak NG as a demo speaker with an
    emotion's prosody (what `unitaf infer --tts espeak` speaks)."""
    from unitaf_data.espeak import Synthesizer

    utterance = Synthesizer.shared().speak(text, speaker_prosody(speaker, emotion))
    if not len(utterance.audio):
        raise ValueError(f"eSpeak NG gave no audio for {text!r}")
    return utterance.audio, utterance.sample_rate


def _assign_splits(count: int, rng: np.random.Generator) -> list[str]:
    splits = ["train"] * count
    held_out = ("val", "test", "test_speaker") if count >= 4 else ("val", "test")
    if count >= 3:
        size = max(1, round(0.1 * count))
        order = rng.permutation(count)
        for n, split in enumerate(held_out):
            for i in order[n * size : (n + 1) * size]:
                splits[i] = split
    return splits


def synthesize_recording(plan: DemoRecordingPlan, corpus_dir: Path | str, seed: int) -> dict:
    """Speak one planned recording (eSpeak NG, or Piper for `engine` piper), build its face
    from the phoneme timeline, put the speech through the planned conditions, write its
    three files (into a folder, or a storage URL); returns its entry (a Piper recording's
    carries its `piper` script).

    Reproducible only when called in a fresh process (see `unitaf_data.espeak`)."""
    if is_url(corpus_dir):
        import tempfile

        storage = Storage.of(str(corpus_dir))
        with tempfile.TemporaryDirectory(prefix="unitaf-demo-") as folder:
            entry = synthesize_recording(plan, Path(folder), seed)
            for name in _files(plan.recording):
                storage.upload(name, Path(folder) / name)
        return entry
    if plan.engine == "piper":
        spoken = speak_piper(plan.sentences, plan.pauses, _piper_seed(seed, plan))
        audio, sr, phonemes = spoken.audio, spoken.sample_rate, spoken.phonemes
        words, sentences, extra = spoken.words, spoken.sentences, {"piper": spoken.script}
    else:
        audio, sr, phonemes, words, sentences = _speak_espeak(plan)
        extra = {}
    num_frames = round(len(audio) / sr * FPS)
    rng = np.random.default_rng([seed, zlib.crc32(plan.recording.encode())])
    face = face_from_phonemes(phonemes, num_frames, FPS, plan.emotion, rng)
    if not plan.conditions.clean:
        audio = _through_conditions(audio, sr, plan, sentences, rng)

    stem = corpus_dir / plan.recording
    sf.write(f"{stem}.wav", audio, sr, subtype="PCM_16")
    np.save(f"{stem}.face.npy", face)
    timeline = {"phonemes": phonemes, "words": words, "sentences": sentences}
    Path(f"{stem}.timeline.json").write_text(json.dumps(timeline, indent=1))
    return asdict(plan) | {"duration": len(audio) / sr, "frames": num_frames} | extra


def _piper_seed(seed: int, plan: DemoRecordingPlan) -> int:
    return (seed * 1_000_003 + zlib.crc32(plan.recording.encode())) % 2**31


def _speak_espeak(plan: DemoRecordingPlan) -> tuple:
    """(audio, rate, phonemes, words, sentences) of a plan spoken by its eSpeak voice."""
    from unitaf_data.espeak import Prosody, Synthesizer

    synth = Synthesizer.shared()
    prosody = Prosody(plan.voice, plan.rate, plan.pitch, plan.range, plan.volume)
    sr = synth.sample_rate
    pieces, phonemes, words, sentences = [], [], [], []
    cursor = 0.0
    for sentence, pause in zip(plan.sentences, plan.pauses, strict=False):
        pieces.append(np.zeros(round(pause * sr), np.float32))
        phonemes.append(("_", cursor, cursor + len(pieces[-1]) / sr))
        cursor += len(pieces[-1]) / sr
        utterance = synth.speak(sentence, prosody)
        phonemes += [(p.label, cursor + p.start, cursor + p.end) for p in utterance.phonemes]
        words += [(w.label, cursor + w.start, cursor + w.end) for w in utterance.words]
        sentences.append((sentence, cursor, cursor + len(utterance.audio) / sr))
        pieces.append(utterance.audio)
        cursor += len(utterance.audio) / sr
    pieces.append(np.zeros(round(plan.pauses[-1] * sr), np.float32))
    phonemes.append(("_", cursor, cursor + len(pieces[-1]) / sr))
    return np.concatenate(pieces), sr, phonemes, words, sentences


def _through_conditions(audio: np.ndarray, sr: int, plan: DemoRecordingPlan,
                        sentences: list, rng: np.random.Generator) -> np.ndarray:
    """The recording's speech through its conditions; SNR and level are measured over the
    sentences, babble is other eSpeak voices speaking train sentences at once."""
    mask = np.zeros(len(audio), bool)
    for _, start, end in sentences:
        mask[round(start * sr) : round(end * sr)] = True
    babble = _babble(sr, rng) if plan.conditions.noise == "babble" else None
    return apply_conditions(audio, sr, plan.conditions, rng, mask, babble)


def _babble(sr: int, rng: np.random.Generator) -> np.ndarray:
    """Four voices at once, each speaking two train sentences, level-matched, ~6 s."""
    from unitaf_data.espeak import Prosody, Synthesizer

    synth, train = Synthesizer.shared(), sentence_splits()["train"]
    voices = []
    for voice in BABBLE_VOICES:
        said = [synth.speak(train[int(rng.integers(len(train)))],
                            Prosody(voice, 175, 50, 50, 100)).audio for _ in range(2)]
        speech = np.concatenate(said)
        voices.append(speech / (np.sqrt(np.mean(speech.astype(np.float64) ** 2)) + 1e-9))
    length = min(len(v) for v in voices)
    return np.sum([np.roll(v, int(rng.integers(len(v))))[:length] for v in voices], axis=0)


# --- the face ------------------------------------------------------------------------------

_APERTURE = ("JawOpen", "MouthClose", "MouthPressLeft", "MouthPressRight",
             "MouthLowerDownLeft", "MouthLowerDownRight", "MouthRollLower", "MouthRollUpper",
             "MouthUpperUpLeft", "MouthUpperUpRight")
_SHAPE = ("MouthPucker", "MouthFunnel", "MouthStretchLeft", "MouthStretchRight")
_REST = {"JawOpen": 0.03, "MouthClose": 0.03}


@dataclass(frozen=True)
class _Viseme:
    targets: dict[str, float]
    aperture_dominance: float  # how strongly this phoneme holds the jaw and lips
    shape_dominance: float  # how strongly it holds lip rounding and spreading
    reach: float  # seconds: how far its influence spreads outside its own span


def _both(name: str, value: float) -> dict[str, float]:
    return {f"{name}Left": value, f"{name}Right": value}


_BILABIAL = _Viseme({"JawOpen": 0.08, "MouthClose": 0.08, **_both("MouthPress", 0.35),
                     "MouthRollLower": 0.1, "MouthRollUpper": 0.1}, 60.0, 0.3, 0.012)
_LABIODENTAL = _Viseme({"JawOpen": 0.12, "MouthClose": 0.02, "MouthRollLower": 0.45,
                        **_both("MouthUpperUp", 0.15)}, 3.0, 0.5, 0.05)
_PAUSE = _Viseme(dict(_REST), 1.0, 1.0, 0.03)
_POSTALVEOLAR = {"S", "Z", "tS", "dZ", "r", "w"}
_VOWEL_JAW = {"a": 0.6, "A": 0.6, "V": 0.5, "E": 0.42, "e": 0.38, "O": 0.45, "0": 0.45,
              "o": 0.4, "@": 0.28, "3": 0.3, "I": 0.22, "i": 0.2, "U": 0.22, "u": 0.2}


def viseme_for(label: str) -> _Viseme:
    """The mouth target of one eSpeak phoneme mnemonic (stress marks ' and , allowed)."""
    stressed = label.startswith("'")
    phoneme = label.lstrip("',")
    if phoneme.startswith("_") or not phoneme:
        return _PAUSE
    if phoneme[0] in "pbm":
        return _BILABIAL
    if phoneme[0] in "fv":
        return _LABIODENTAL
    if phoneme[0] in _VOWEL_JAW:
        jaw = _VOWEL_JAW[phoneme[0]] * (1.15 if stressed else 1.0)
        targets = {"JawOpen": jaw, **_both("MouthLowerDown", 0.4 * jaw)}
        if phoneme[0] in "OUuo0":
            targets |= {"MouthPucker": 0.55, "MouthFunnel": 0.45}
        elif phoneme[0] in "iIe":
            targets |= _both("MouthStretch", 0.35)
        return _Viseme(targets, 1.0, 1.0, 0.05)
    targets = {"JawOpen": 0.15, **_both("MouthLowerDown", 0.05)}
    if phoneme in _POSTALVEOLAR:
        targets |= {"MouthPucker": 0.45, "MouthFunnel": 0.3}
    return _Viseme(targets, 0.6, 0.8 if phoneme in _POSTALVEOLAR else 0.3, 0.05)


def face_from_phonemes(
    phonemes: list[tuple[str, float, float]],
    num_frames: int,
    fps: float,
    emotion: str,
    rng: np.random.Generator,
) -> np.ndarray:
    """ARKit-51 (UniTalker order) float32 (num_frames, 51) in [0, 1] for a phoneme timeline."""
    channels = ARKIT51.channels
    face = np.zeros((num_frames, len(channels)), np.float32)
    times = (np.arange(num_frames) + 0.5) / fps  # frame i is sampled at its centre
    face[:, [channels.index(c) for c in _APERTURE + _SHAPE]] = _articulation(phonemes, times)
    for name, value in EMOTIONS[emotion][4].items():
        face[:, channels.index(name)] += value
    _add_brow_motion(face, times, rng)
    _add_blinks(face, times, rng)
    return np.clip(face, 0.0, 1.0)


def _articulation(phonemes: list[tuple[str, float, float]], times: np.ndarray) -> np.ndarray:
    """Dominance-weighted blend of viseme targets: (T, aperture + shape channels)."""
    names = _APERTURE + _SHAPE
    rest = _Viseme(dict(_REST), 1e-3, 1e-3, math.inf)  # holds the face wherever nothing speaks
    units = [(viseme_for(label), start, end) for label, start, end in phonemes]
    units.append((rest, -math.inf, math.inf))
    targets = np.array([[v.targets.get(n, 0.0) for n in names] for v, _, _ in units])
    distance = np.stack([np.maximum(0.0, np.maximum(s - times, times - e)) for _, s, e in units])
    falloff = np.exp(-distance / np.array([[v.reach] for v, _, _ in units]))
    weights = []
    for group, size in (("aperture_dominance", len(_APERTURE)), ("shape_dominance", len(_SHAPE))):
        dominance = np.array([[getattr(v, group)] for v, _, _ in units]) * falloff
        weights.append(np.repeat(dominance[:, :, None], size, axis=2))
    weight = np.concatenate(weights, axis=2)  # (units, T, channels)
    return (weight * targets[:, None, :]).sum(0) / weight.sum(0)


def _add_brow_motion(face: np.ndarray, times: np.ndarray, rng: np.random.Generator) -> None:
    """Slow, smooth brow and smile drift: a few low-frequency sinusoids with random phase."""
    channels = ARKIT51.channels
    for name, amplitude in (("BrowInnerUp", 0.12), ("BrowOuterUpLeft", 0.08),
                            ("BrowOuterUpRight", 0.08), ("MouthSmileLeft", 0.06),
                            ("MouthSmileRight", 0.06)):
        freqs, phases = rng.uniform(0.05, 0.4, 3), rng.uniform(0, 2 * np.pi, 3)
        wave = np.sin(2 * np.pi * freqs[:, None] * times[None] + phases[:, None]).mean(0)
        face[:, channels.index(name)] += amplitude * (0.5 + 0.5 * wave)


def _add_blinks(face: np.ndarray, times: np.ndarray, rng: np.random.Generator) -> None:
    """Blinks every 2-6 s, each a 150 ms raised-cosine closure of both eyes."""
    channels = ARKIT51.channels
    blink = np.zeros_like(times)
    moment, end = rng.uniform(0.5, 3.0), (times[-1] if len(times) else 0.0)
    while moment < end:
        phase = np.clip((times - moment) / 0.15, 0.0, 1.0)
        blink = np.maximum(blink, np.where((phase > 0) & (phase < 1),
                                           0.5 - 0.5 * np.cos(2 * np.pi * phase), 0.0))
        moment += rng.uniform(2.0, 6.0)
    for name in ("EyeBlinkLeft", "EyeBlinkRight"):
        face[:, channels.index(name)] += blink


# --- the source interface ------------------------------------------------------------------


def _files(recording: str) -> tuple[str, str, str]:
    """A recording's audio, face and timeline file names."""
    check_key(recording)
    return f"{recording}.wav", f"{recording}.face.npy", f"{recording}.timeline.json"


def _index(corpus_dir: str | Path) -> Location:
    storage = corpus_storage(corpus_dir)
    return Location(storage, "corpus.json") if storage else \
        Location.of(Path(corpus_dir) / "corpus.json")


def discover(
    corpus_dir: str | Path, options: SourceOptions = DEFAULT_OPTIONS
) -> list[RecordingRef]:
    """Every recording listed in `corpus.json`, sorted by recording id."""
    storage = corpus_storage(corpus_dir)
    root = storage or Path(corpus_dir)
    index = json.loads(_index(corpus_dir).read_bytes())
    refs = []
    for entry in index["recordings"]:
        audio, face, timeline = (corpus_path(root, name) for name in _files(entry["recording"]))
        refs.append(RecordingRef(
            source=NAME, speaker=entry["speaker"], recording=entry["recording"],
            split=entry["split"], emotion=entry["emotion"], audio_path=audio, face_path=face,
            extra={"timeline_path": timeline, "custom": clip_custom(entry),
                   **corpus_extra(storage)}))
    return sorted(refs, key=lambda ref: ref.id)


def clip_custom(entry: dict) -> dict:
    """What every clip of a recording carries in its json `custom`: the synthesiser that
    spoke it (`voice`: espeak or piper), its voice name, its recording conditions, and for
    Piper the script that speaks it again (`piper`, read by the piper_latent set)."""
    custom = {"voice": entry["engine"], "voice_name": entry["voice"],
              "conditions": Conditions(**entry["conditions"]).to_dict()}
    return custom | ({"piper": entry["piper"]} if entry["engine"] == "piper" else {})


def load(ref: RecordingRef) -> Recording:
    """Audio at 16 kHz mono, the ARKit-51 face, and the synthesised words and phonemes as
    reference words and phones."""
    with input_files(ref.extra.get("corpus"), ref.audio_path, ref.face_path,
                     ref.extra["timeline_path"]) as (audio, face, timeline_path):
        timeline = json.loads(timeline_path.read_text())
        return Recording(
            ref=ref, audio=load_audio(audio), sample_rate=SAMPLE_RATE,
            face=np.load(face, allow_pickle=False).astype(np.float32), face_type=ARKIT51.name,
            channels=ARKIT51.channels, fps=FPS,
            reference_words=[Word(w, s, e) for w, s, e in timeline["words"]],
            reference_phones=phones_from_events(timeline["phonemes"],
                                                f"{ref.extra['timeline_path']}: phonemes"),
            custom=ref.extra["custom"],
        )


def corpus_settings(minutes: float, seed: int) -> dict:
    return {"corpus_version": CORPUS_VERSION, "minutes": minutes, "seed": seed, "fps": FPS}


def corpus_is_complete(corpus_dir: Path | str, minutes: float, seed: int) -> bool:
    """True when `corpus.json` (written last) exists for exactly these settings."""
    index = _index(corpus_dir)
    if not index.exists():
        return False
    return json.loads(index.read_bytes()).get("settings") == corpus_settings(minutes, seed)


def write_index(corpus_dir: Path | str, minutes: float, seed: int, entries: list[dict]
                ) -> None:
    """Write `corpus.json` last (whole): its presence marks the corpus complete."""
    index = {"settings": corpus_settings(minutes, seed), "face_type": ARKIT51.name,
             "channels": list(ARKIT51.channels), "recordings": entries}
    _index(corpus_dir).write_bytes(json.dumps(index, indent=1).encode())


def prepare(corpus_dir: str | Path, minutes: float = 4.0, seed: int = 0) -> Path:
    """Make the whole corpus with local processes, one fresh process per recording (the plain
    path; `unitaf_pipelines.build` runs the same function as Ray tasks)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    corpus_dir = Path(corpus_dir)
    if not corpus_is_complete(corpus_dir, minutes, seed):
        from unitaf_data import owned

        owned.claim(corpus_dir, "demo_corpus", "pass a new or empty folder for the corpus")
        plans = plan_corpus(minutes, seed)
        with ProcessPoolExecutor(max_tasks_per_child=1, mp_context=get_context("spawn")) as pool:
            entries = list(pool.map(synthesize_recording, plans, [corpus_dir] * len(plans),
                                    [seed] * len(plans)))
        write_index(corpus_dir, minutes, seed, entries)
    return corpus_dir
