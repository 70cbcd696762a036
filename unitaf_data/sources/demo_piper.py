"""Demo recordings spoken by Piper's `en_US-joe-medium` voice (`unitaf_data.piper`).

A Piper-spoken recording is a `PiperScript` (sentences, the silences around them, a seed)
spoken by `speak_script`, so the `piper_latent` feature set can speak it again to the byte.
Its face is built from Piper's own phoneme timeline exactly as for eSpeak voices: each IPA
label becomes the eSpeak mnemonic the visemes read (`piper.espeak_mnemonic`); the frames
Piper gives a word gap are left to the phones either side (eSpeak's timeline has no word
gaps either). Piper gives no
word times, so each sentence's words are laid on its runs of phones between word gaps; where
eSpeak's phonemiser runs words together ("on the" -> `ɔnðə`), the words of a run share its
span, as eSpeak's own word events do. The voice has one prosody: an emotion shows only in
the face.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

VOICE_NAME = "en_US-joe-medium"
_WORD_GAP = {" ", ".", ",", "?", "!", ";", ":", "-"}


@dataclass(frozen=True)
class PiperRecording:
    audio: np.ndarray  # float32 mono at `sample_rate`
    sample_rate: int
    phonemes: list[tuple[str, float, float]]  # eSpeak mnemonics, pauses `_`, covering audio
    words: list[tuple[str, float, float]]
    sentences: list[tuple[str, float, float]]
    script: dict  # the PiperScript, as the clip json's custom.piper carries it


def speak(sentences: tuple[str, ...], pauses: tuple[float, ...], seed: int) -> PiperRecording:
    """Speak a planned recording with the Piper voice (sentence i seeded by (seed, i))."""
    from unitaf_data.piper import PiperScript, espeak_mnemonic, load_voice, speak_script
    from unitaf_data.piper import voice_sha256 as sha256

    voice = load_voice()
    script = PiperScript(tuple(sentences), tuple(pauses), seed, sha256(voice))
    speech = speak_script(voice, script)
    spans = _sentence_spans(speech.phones)
    if len(spans) != len(sentences):
        raise RuntimeError(f"Piper spoke {len(spans)} sentences for {len(sentences)}")
    words = []
    for sentence, (first, last) in zip(sentences, spans, strict=True):
        words += _words(sentence, speech.phones[first : last + 1], voice.espeak_voice)
    phonemes = [(espeak_mnemonic(label), start, end) for label, start, end in speech.phones
                if label != " "]  # a word gap is no pause: its neighbours share its frames
    timed = [(s, speech.phones[a][1], speech.phones[b][2])
             for s, (a, b) in zip(sentences, spans, strict=True)]
    return PiperRecording(speech.wav, speech.sample_rate, phonemes, words, timed,
                          script.to_dict())


def _sentence_spans(phones: list[tuple[str, float, float]]) -> list[tuple[int, int]]:
    """(first, last) phone index of each synthesised sentence: from its `^` to its `$`."""
    from unitaf_data.piper import BOS, EOS

    starts = [i for i, (label, _, _) in enumerate(phones) if label.startswith(BOS)]
    ends = [i for i, (label, _, _) in enumerate(phones) if label.startswith(EOS)]
    return list(zip(starts, ends, strict=True))


def _runs(phones: list[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    """(IPA, start, end) of each run of spoken phones between word gaps."""
    from unitaf_data.piper import is_speech

    runs, current = [], []
    for label, start, end in phones:
        if is_speech(label) and label not in _WORD_GAP and label != "_":
            current.append((label, start, end))
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [("".join(p[0] for p in run), run[0][1], run[-1][2]) for run in runs]


def _plain(ipa: str) -> str:
    return re.sub(r"[ˈˌːˑ]", "", ipa)


def _words(sentence: str, phones: list[tuple[str, float, float]], espeak_voice: str
           ) -> list[tuple[str, float, float]]:
    """The sentence's words timed by the runs they were spoken in: a monotone alignment of
    words to runs (each run one or more consecutive words) that best matches each run's IPA
    to its words' own IPA."""
    from unitaf_data.espeak import Synthesizer

    words = sentence.split()
    runs = _runs(phones)
    if not runs:
        raise RuntimeError(f"Piper spoke no phones for {sentence!r}")
    synth = Synthesizer.shared()
    alone = [_plain("".join(c.ipa for c in synth.ipa_clauses(w, espeak_voice)))
             for w in words]
    groups = _align([_plain(r[0]) for r in runs], alone)
    timed = []
    for (_, start, end), group in zip(runs, groups, strict=True):
        timed += [(words[i], start, end) for i in group]
    return timed


def _align(runs: list[str], words: list[str]) -> list[list[int]]:
    """Consecutive word groups, one per run, minimising the summed edit distance between
    each run and its words' IPA joined (every word in exactly one group, in order)."""
    n, m = len(runs), len(words)
    if m < n:
        raise RuntimeError(f"{n} runs of phones for {m} words")
    inf = float("inf")
    cost = np.full((n + 1, m + 1), inf)
    back = np.zeros((n + 1, m + 1), int)
    cost[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(i, m - (n - i) + 1):
            for k in range(i - 1, j):
                if cost[i - 1, k] < inf:
                    c = cost[i - 1, k] + _distance(runs[i - 1], "".join(words[k:j]))
                    if c < cost[i, j]:
                        cost[i, j], back[i, j] = c, k
    groups, j = [], m
    for i in range(n, 0, -1):
        groups.append(list(range(back[i, j], j)))
        j = back[i, j]
    return groups[::-1]


def _distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
    return row[-1]
