"""eSpeak NG speech synthesis with phoneme and word timing, through ctypes.

eSpeak NG is GPL-3.0. The toolkit does not ship it: the library and its data come from the
optional `espeakng-loader` wheel (`pip install "unitaf[demo]"`) and are loaded at run time,
only to synthesise the demo corpus. eSpeak keeps global state, so one process holds one
engine (`Synthesizer.shared()`). Voices with breath (the `+f` variants among them) draw noise
from a random generator seeded from the clock: every synthesis reseeds it
(`espeak_ng_SetRandSeed`). The wave generator also keeps static state (pitch flutter) that
`espeak_Terminate` does not reset, so output is reproducible only for the same sequence of
calls from a fresh process: callers that need determinism synthesise each unit of work in a
new process.
"""

from __future__ import annotations

import ctypes
import functools
import re
from dataclasses import dataclass

import numpy as np

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 1
_POS_CHARACTER = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_END = 5
_EVENT_PHONEME = 7
_PARAMETERS = {"rate": 1, "volume": 2, "pitch": 3, "range": 4}
_CHARS_UTF8 = 1
_PHONEMES_IPA = 2
_CLAUSE_PUNCTUATION = ".,?!;:"
_SENTENCE_END = ".?!"
_RANDOM_SEED = 1  # any fixed value: a rebuild must reproduce the audio byte for byte


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


@dataclass(frozen=True)
class TimedUnit:
    """A phoneme (eSpeak mnemonic, stress marks kept) or a word with its time span."""

    label: str
    start: float
    end: float


@dataclass
class Utterance:
    audio: np.ndarray  # float32 mono
    sample_rate: int
    phonemes: list[TimedUnit]
    words: list[TimedUnit]


@dataclass(frozen=True)
class Clause:
    """The IPA of one clause and the punctuation that ended it ("" for none)."""

    ipa: str
    punctuation: str

    @property
    def ends_sentence(self) -> bool:
        return self.punctuation in _SENTENCE_END and self.punctuation != ""


@dataclass(frozen=True)
class Prosody:
    voice: str  # eSpeak voice with optional variant, e.g. "en-us+f3"
    rate: int = 175  # words per minute
    pitch: int = 50  # 0-100
    range: int = 50  # 0-100
    volume: int = 100  # 0-200


class Synthesizer:
    """One eSpeak NG engine in synchronous mode, collecting audio and events per call."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as error:
            raise RuntimeError(
                "the demo corpus needs eSpeak NG: pip install 'unitaf[demo]' "
                "(espeakng-loader, GPL-3.0, loaded at run time only)"
            ) from error
        self._lib = ctypes.cdll.LoadLibrary(espeakng_loader.get_library_path())
        data_path = espeakng_loader.get_data_path().encode()
        self.sample_rate = self._lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, _INITIALIZE_PHONEME_EVENTS
        )
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({self.sample_rate})")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, int, bytes]] = []
        self._callback = _Callback(self._on_synth)  # keep a reference: C holds the pointer
        self._lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    @functools.cache
    def shared(cls) -> Synthesizer:
        return cls()

    def _on_synth(self, wav, num_samples, events) -> int:
        if num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            label = event.id.string if event.type == _EVENT_PHONEME else b""
            self._events.append(
                (event.type, event.text_position, event.length, event.sample, label)
            )
            i += 1
        return 0

    def speak(self, text: str, prosody: Prosody) -> Utterance:
        """Synthesise `text`; phoneme and word spans are in seconds from the audio start."""
        if self._lib.espeak_SetVoiceByName(prosody.voice.encode()) != 0:
            raise ValueError(f"eSpeak NG has no voice {prosody.voice!r}")
        for name, code in _PARAMETERS.items():
            self._lib.espeak_SetParameter(code, getattr(prosody, name), 0)
        self._chunks, self._events = [], []
        self._lib.espeak_ng_SetRandSeed(_RANDOM_SEED)
        encoded = text.encode()
        self._lib.espeak_Synth(encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, 0, None, None)
        audio = (np.concatenate(self._chunks).astype(np.float32) / 32768.0
                 if self._chunks else np.zeros(0, np.float32))
        return Utterance(audio, self.sample_rate, *self._timeline(encoded, len(audio)))

    def ipa_clauses(self, text: str, voice: str) -> list[Clause]:
        """IPA of `text` for an eSpeak voice, one entry per clause with the punctuation that
        ended it (eSpeak's phoneme translation drops punctuation; a clause's end is read from
        the text it consumed, as Piper's phonemiser keeps it)."""
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"eSpeak NG has no voice {voice!r}")
        self._lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self._lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p),
                                                    ctypes.c_int, ctypes.c_int]
        encoded = text.encode()
        buffer = ctypes.create_string_buffer(encoded)
        base = ctypes.addressof(buffer)
        pointer = ctypes.c_char_p(base)
        clauses = []
        while pointer.value is not None:
            start = ctypes.cast(pointer, ctypes.c_void_p).value - base
            ipa = self._lib.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_UTF8,
                                                  _PHONEMES_IPA)
            after = ctypes.cast(pointer, ctypes.c_void_p).value
            consumed = encoded[start:None if after is None else after - base].decode(
                errors="ignore")
            if after is not None:  # eSpeak has read one character of the next clause
                consumed = consumed[:-1]
            consumed = consumed.rstrip()
            end = consumed[-1] if consumed and consumed[-1] in _CLAUSE_PUNCTUATION else ""
            clauses.append(Clause(re.sub(r"\([^)]*\)", "", (ipa or b"").decode()).strip(),
                                  end))
        return clauses

    def _timeline(self, text: bytes, total_samples: int) -> tuple[list[TimedUnit], list[TimedUnit]]:
        sr = self.sample_rate
        phoneme_starts = [(s, lab.decode()) for t, _, _, s, lab in self._events
                          if t == _EVENT_PHONEME]
        end_sample = max([s for t, *_, s, _ in self._events if t == _EVENT_END] + [total_samples])
        phonemes = [
            TimedUnit(label, start / sr, (phoneme_starts[i + 1][0] if i + 1 < len(phoneme_starts)
                                          else end_sample) / sr)
            for i, (start, label) in enumerate(phoneme_starts)
        ]
        # eSpeak sends no word event for some unstressed words ("the" before a noun), so
        # every word of the text takes the span of the word event that covers it.
        events = [(p - 1, s / sr) for t, p, _, s, _ in self._events if t == _EVENT_WORD]
        spans = []
        for i, (position, start) in enumerate(events):
            limit = events[i + 1][1] if i + 1 < len(events) else end_sample / sr
            pauses = [ph.start for ph in phonemes
                      if _is_pause(ph.label) and start < ph.start < limit]
            spans.append((position, start, min(pauses, default=limit)))
        words = []
        for match in re.finditer(rb"\S+", text):
            covering = [span for span in spans if span[0] <= match.start()] or spans[:1]
            if covering:
                words.append(TimedUnit(match.group().decode(errors="replace"), *covering[-1][1:]))
        return phonemes, words


def _is_pause(label: str) -> bool:
    return label.startswith("_")

