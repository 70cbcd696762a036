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

NAME = "demo"
FPS = 30.0
CORPUS_VERSION = 1
RECORDING_TARGET_SECONDS = 20.0

SENTENCES = (
    "Good morning, my friends, it is a beautiful day.",
    "The pilot spoke calmly as the plane began to move.",
    "Bring a jumper because the evening may be cold.",
    "Please remember to bring my umbrella tomorrow.",
    "The plumber fixed the pump in the basement.",
    "Please bring the big blue map back to the boat.",
    "Palm trees bend when a powerful storm blows in.",
    "The farmer moved the sheep up the muddy path.",
    "Bob made a maple pie for my mom.",
    "Paper maps are better than phones in the mountains.",
    "The puppy jumped over a pile of empty boxes.",
    "A warm breeze moved across the open harbor.",
    "The poet wrote a moving poem about a broken bell.",
    "We sampled plum jam and buttered bread at the market.",
    "My brother bought a bright umbrella in Boston.",
    "Pop music played from a battered old boom box.",
    "Robert baked a marble cake for the family party.",
    "The museum opens at nine on most Mondays.",
    "Maybe we should meet at the bus stop before lunch.",
    "The people in the apartment upstairs play the piano every morning.",
    "Remember to put the milk back in the fridge.",
    "The problem was simple, but the answer took time.",
    "She opened the map and pointed to the small bay.",
    "We will probably be back home before midnight.",
    "The baby smiled when the puppy climbed on the bed.",
    "Computers became much cheaper over the past ten years.",
    "Please tell me about the best book you have read.",
    "The big ship moved slowly past the white lighthouse.",
)

SPEAKERS = (  # speaker id, eSpeak voice, base rate (words/min), base pitch (0-100)
    ("spk01", "en-us+m1", 170, 42),
    ("spk02", "en-us+Annie", 165, 55),
    ("spk03", "en-us+m4", 160, 40),
    ("spk04", "en-us+steph", 160, 60),
)

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


def plan_corpus(minutes: float, seed: int) -> list[DemoRecordingPlan]:
    """Deterministic plan: ~20 s recordings cycling through speakers and emotions.

    Splits are per recording (no recording is split across train/val/test); with three or
    more recordings at least one goes to val and one to test.
    """
    rng = np.random.default_rng(seed)
    count = max(1, math.ceil(minutes * 60.0 / RECORDING_TARGET_SECONDS))
    splits = _assign_splits(count, rng)
    emotions = list(EMOTIONS)
    plans = []
    for i in range(count):
        speaker = SPEAKERS[i % len(SPEAKERS)][0]
        emotion = emotions[(i // len(SPEAKERS) + i % len(SPEAKERS)) % len(emotions)]
        voice = speaker_prosody(speaker, emotion)
        chosen = rng.choice(len(SENTENCES), size=7, replace=False)
        plans.append(DemoRecordingPlan(
            recording=f"rec{i:04d}", speaker=speaker, voice=voice.voice, emotion=emotion,
            split=splits[i], rate=voice.rate, pitch=voice.pitch, range=voice.range,
            volume=voice.volume, sentences=tuple(SENTENCES[j] for j in chosen),
            pauses=tuple(round(float(p), 3) for p in rng.uniform(0.45, 0.9, size=6)),
        ))
    return plans


def speaker_prosody(speaker: str, emotion: str):
    """The eSpeak voice and prosody of a demo speaker speaking with an emotion."""
    from unitaf_data.espeak import Prosody

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
    if count >= 3:
        held_out = max(1, round(0.1 * count))
        order = rng.permutation(count)
        for i in order[:held_out]:
            splits[i] = "val"
        for i in order[held_out : 2 * held_out]:
            splits[i] = "test"
    return splits


def synthesize_recording(plan: DemoRecordingPlan, corpus_dir: Path | str, seed: int) -> dict:
    """Speak one planned recording, build its face, write its three files (into a folder,
    or a storage URL); returns its entry.

    Reproducible only when called in a fresh process (see `unitaf_data.espeak`)."""
    if is_url(corpus_dir):
        import tempfile

        storage = Storage.of(str(corpus_dir))
        with tempfile.TemporaryDirectory(prefix="unitaf-demo-") as folder:
            entry = synthesize_recording(plan, Path(folder), seed)
            for name in _files(plan.recording):
                storage.upload(name, Path(folder) / name)
        return entry
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
    audio = np.concatenate(pieces)
    num_frames = round(len(audio) / sr * FPS)
    rng = np.random.default_rng([seed, zlib.crc32(plan.recording.encode())])
    face = face_from_phonemes(phonemes, num_frames, FPS, plan.emotion, rng)

    stem = corpus_dir / plan.recording
    sf.write(f"{stem}.wav", audio, sr, subtype="PCM_16")
    np.save(f"{stem}.face.npy", face)
    timeline = {"phonemes": phonemes, "words": words, "sentences": sentences}
    Path(f"{stem}.timeline.json").write_text(json.dumps(timeline, indent=1))
    return asdict(plan) | {"duration": len(audio) / sr, "frames": num_frames}


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
            extra={"timeline_path": timeline, **corpus_extra(storage)}))
    return sorted(refs, key=lambda ref: ref.id)


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
