"""The audio readers against hostile and extreme files: the build's decode of corpus
recordings (`load_recording` of a folder corpus), `animate`'s audio front end and `infer`'s
voice prompt reader (`read_prompt`).

Seeded cases: truncations and header bit flips of WAV, FLAC and OGG files, wrong headers
(text, FLAC magic and zeros, a numpy file, an empty file), NaN and inf samples, zero and one
sample, 1 Hz, 3.999 kHz, 384.001 kHz and 1 MHz rates, 8 to 32 channels (and 65), a header
claiming two hours, and a real two-hour 8 kHz int16 file (115 MB). Each reader gives its
named error (AudioError, or a build Rejection with a countable reason) or a result; never
another exception, a hang, or memory beyond a cap: `load_audio` runs under RLIMIT_AS.
The counts per reader and outcome are printed and asserted.
"""

from __future__ import annotations

import io
import json
import signal
import struct
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from unitaf_data.audio import MAX_AUDIO_SECONDS, AudioError, load_audio

ROOT = Path(__file__).resolve().parents[1]
TIME_LIMIT = 60.0  # seconds one reader may take on one file
MEMORY_CAP = 3 << 30  # bytes of address space for load_audio over every case
REASONS = {"unreadable_audio", "bad_sample_rate", "too_many_channels", "audio_too_long",
           "empty_audio", "nonfinite_audio", "audio_too_short"}


def _write(path: Path, audio: np.ndarray, rate: int, subtype: str | None = None,
           fmt: str | None = None) -> Path:
    sf.write(path, audio, rate, subtype=subtype, format=fmt)
    return path


def _tone(seconds: float, rate: int = 16_000, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return np.repeat(tone[:, None], channels, 1) if channels > 1 else tone


def _wav_header(rate: int, channels: int, data_bytes: int, bits: int = 16) -> bytes:
    """A canonical PCM WAV header whose data chunk claims `data_bytes`."""
    block = channels * bits // 8
    return (b"RIFF" + struct.pack("<I", min(36 + data_bytes, 2**32 - 1)) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, bits)
            + b"data" + struct.pack("<I", min(data_bytes, 2**32 - 1)))


Case = tuple[str, Callable[[Path], Path]]  # (kind, write the file into a folder)


def _truncated(fmt: str, fraction: float) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        buffer = io.BytesIO()
        sf.write(buffer, _tone(2.0), 16_000, format=fmt)
        data = buffer.getvalue()
        path = folder / f"a.{fmt.lower()}"
        path.write_bytes(data[: int(fraction * len(data))])
        return path
    return write


def _flipped(fmt: str, offset_fraction: float, bit: int) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        buffer = io.BytesIO()
        sf.write(buffer, _tone(2.0), 16_000, format=fmt)
        data = bytearray(buffer.getvalue())
        data[int(offset_fraction * min(len(data), 64))] ^= 1 << bit  # in the header
        path = folder / f"a.{fmt.lower()}"
        path.write_bytes(bytes(data))
        return path
    return write


def _raw(name: str, data: bytes) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        (folder / name).write_bytes(data)
        return folder / name
    return write


def _array(audio: np.ndarray, rate: int, subtype: str = "PCM_16") -> Callable[[Path], Path]:
    return lambda folder: _write(folder / "a.wav", audio, rate, subtype)


def _two_hours(folder: Path) -> Path:
    """A real two-hour 8 kHz int16 WAV (115 MB), written block by block."""
    path = folder / "long.wav"
    with sf.SoundFile(path, "w", 8000, 1, "PCM_16") as out:
        block = (_tone(60.0, 8000) * 32767).astype(np.int16)
        for _ in range(120):
            out.write(block)
    return path


def audio_cases(rng: np.random.Generator) -> list[Case]:
    cases: list[Case] = [("valid 1 s", _array(_tone(1.0), 16_000))]
    for fmt in ("WAV", "FLAC", "OGG"):
        cases += [(f"truncated {fmt}", _truncated(fmt, float(f)))
                  for f in rng.uniform(0, 1, 8)]
        cases += [(f"header bit flip {fmt}", _flipped(fmt, float(f), int(b)))
                  for f, b in zip(rng.uniform(0, 1, 8), rng.integers(0, 8, 8), strict=True)]
    nan = _tone(1.0)
    nan[100] = np.nan
    cases += [
        ("text named .wav", _raw("a.wav", b"hello, not audio\n" * 10)),
        ("RIFF then garbage", _raw("a.wav", b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(40))),
        ("FLAC magic then zeros", _raw("a.flac", b"fLaC" + bytes(300))),
        ("numpy file named .wav", _raw("a.wav", b"\x93NUMPY\x01\x00" + bytes(120))),
        ("empty file", _raw("a.wav", b"")),
        ("header only, no data", _raw("a.wav", _wav_header(16_000, 1, 0))),
        ("zero samples", _array(np.zeros(0, np.float32), 16_000)),
        ("one sample", _array(np.full(1, 0.5, np.float32), 16_000)),
        ("NaN samples", _array(nan, 16_000, "FLOAT")),
        ("all NaN", _array(np.full(16_000, np.nan, np.float32), 16_000, "FLOAT")),
        ("inf samples", _array(np.full(16_000, np.inf, np.float32), 16_000, "FLOAT")),
        ("-inf samples", _array(np.full(16_000, -np.inf, np.float32), 16_000, "DOUBLE")),
        ("1 Hz", _array(_tone(1.0, 16_000)[:16], 1)),
        ("3999 Hz", _array(_tone(1.0, 3999), 3999)),
        ("8 kHz", _array(_tone(1.0, 8000), 8000)),
        ("384 kHz", _array(_tone(1.0, 384_000), 384_000)),
        ("384001 Hz", _array(_tone(0.1, 384_001), 384_001)),
        ("1 MHz", _array(_tone(0.5, 1_000_000), 1_000_000)),
        *[(f"{n} channels", _array(_tone(1.0, 16_000, n), 16_000)) for n in (8, 16, 24, 32)],
        ("65 channels", _array(_tone(0.2, 16_000, 65), 16_000)),
        ("header claims two hours, holds 1 s", _raw("a.wav", _wav_header(
            8000, 1, 2 * 3600 * 8000 * 2) + (_tone(1.0, 8000) * 32767).astype("<i2").tobytes())),
        ("header claims 4 GB at 32 channels", _raw("a.wav", _wav_header(
            48_000, 32, 2**32 - 64) + bytes(32 * 2 * 4800))),
        ("two hours of 8 kHz int16 (115 MB)", _two_hours),
    ]
    return cases


# --- the readers ----------------------------------------------------------------------------


class Hang(BaseException):
    """The alarm: a reader took longer than TIME_LIMIT."""


def _alarm(signum, frame):
    raise Hang


def outcome(read: Callable[[Path], str], path: Path,
            allowed: tuple[type[BaseException], ...]) -> str:
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT)
    try:
        return read(path)
    except Hang:
        return "HANG"
    except allowed as error:
        return f"{type(error).__name__} {getattr(error, 'reason', '')}".strip()
    except Exception as error:  # what the test looks for: reported, then it fails
        return f"UNEXPECTED {type(error).__name__}: {str(error)[:160]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


_CAPPED = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
from unitaf_data.audio import AudioError, load_audio
results = []
for path in sys.argv[1:]:
    try:
        audio = load_audio(path)
        results.append(f"ok {{len(audio)}}")
    except AudioError as error:
        results.append(f"AudioError {{error.reason}}")
    except MemoryError:
        results.append("UNEXPECTED MemoryError")
    except Exception as error:
        results.append(f"UNEXPECTED {{type(error).__name__}}: {{str(error)[:160]}}")
print(json.dumps(results))
"""


def _load_audio_capped(paths: list[Path]) -> list[str]:
    """load_audio of every file in one process whose address space is capped."""
    done = subprocess.run([sys.executable, "-c", _CAPPED.format(cap=MEMORY_CAP),
                           *map(str, paths)], capture_output=True, text=True,
                          timeout=TIME_LIMIT * 4, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def _build_decode(path: Path) -> str:
    """The build's decode stage on a folder corpus of this one recording (face beside it)."""
    from unitaf_data.face import ARKIT51
    from unitaf_data.schema import Rejection
    from unitaf_data.sources import SourceOptions
    from unitaf_data.sources.folder import discover
    from unitaf_data.stages import load_recording

    try:
        seconds = sf.info(str(path)).duration
    except Exception:  # an unreadable file: any face length will do
        seconds = 1.0
    frames = max(1, min(round(seconds * 30), 30 * 600))
    header = ",".join(ARKIT51.channels)
    rows = "\n".join([",".join(["0.1"] * len(ARKIT51.channels))] * frames)
    path.with_suffix(".csv").write_text(f"{header}\n{rows}\n")
    (ref,) = discover(path.parent, SourceOptions(face_fps=30.0))
    result = load_recording(ref)
    if isinstance(result, Rejection):
        return f"Rejection {result.reason}"
    return "ok"


def _animate(run, front_end) -> Callable[[Path], str]:
    from unitaf_model.synthesis.animate import animate_file

    def read(path: Path) -> str:
        out = path.parent / "animated"
        files = animate_file(run, front_end, path, out, "a")
        assert files and all(Path(f).exists() for f in files.values())
        return "ok"
    return read


def _prompt(path: Path) -> str:
    from unitaf_model.synthesis.indextts2 import read_prompt

    prompts = read_prompt(path)
    assert all(np.isfinite(a).all() for a in prompts.values())
    return "ok"


@pytest.mark.e2e
def test_every_audio_reader_gives_its_named_error_or_a_result_for_hostile_files(tmp_path):
    from runs import write_random_run
    from unitaf_model.run import load_run
    from unitaf_model.synthesis.animate import AudioFrontEnd

    front = {"backend": "offline", "set": "whisper", "field": "teacher.npy", "model": {}}
    run = load_run(write_random_run(tmp_path / "run", "precomputed", 384, "whisper",
                                    "teacher.npy", front, rig=None))
    readers: dict[str, tuple[Callable[[Path], str], tuple]] = {
        "build decode (load_recording)": (_build_decode, ()),
        "animate (animate_file)": (_animate(run, AudioFrontEnd(run)), (AudioError,)),
        "infer voice prompt (read_prompt)": (_prompt, (AudioError,)),
    }
    cases = audio_cases(np.random.default_rng(17))
    files = []
    for index, (_, write) in enumerate(cases):
        folder = tmp_path / f"case{index}"
        folder.mkdir()
        files.append(write(folder))
    counts: Counter = Counter()
    failures = []
    for (kind, _), result in zip(cases, _load_audio_capped(files), strict=True):
        counts["load_audio (capped)", "ok" if result.startswith("ok") else result] += 1
        if result.startswith("UNEXPECTED"):
            failures.append(f"{kind} → load_audio: {result}")
    for (kind, _), path in zip(cases, files, strict=True):
        for name, (read, allowed) in readers.items():
            result = outcome(read, path, allowed)
            counts[name, result.split(":")[0]] += 1
            bad_reason = result.startswith("Rejection unreadable") and not result.endswith(
                "_audio")  # the build's catch-all for an exception nobody named
            if result.startswith(("UNEXPECTED", "HANG")) or bad_reason:
                failures.append(f"{kind} → {name}: {result}")
    print(f"\n{len(cases)} audio files, {len(readers) + 1} readers:")
    for (reader, result), count in sorted(counts.items()):
        print(f"  {reader:34s} {result:34s} {count}")
    assert not failures, "\n".join(failures)
    assert len(cases) >= 70
    named = {reason for (_, result) in counts for reason in REASONS if reason in result}
    assert named == REASONS  # every named error was met


def test_a_header_claiming_hours_decodes_only_what_is_there_and_the_limit_is_enforced(
        tmp_path):
    """A header claiming two hours over one second of data decodes that second (libsndfile
    takes the file's real size; nothing is allocated for the claim); a file longer than the
    limit is refused by its length before it is decoded."""
    claim = tmp_path / "claims.wav"
    claim.write_bytes(_wav_header(8000, 1, 2 * 3600 * 8000 * 2) + bytes(16_000))
    assert len(load_audio(claim)) == 16_000  # 8000 samples at 8 kHz, resampled to 16 kHz
    short = _write(tmp_path / "short.wav", _tone(3.0), 16_000)
    with pytest.raises(AudioError, match="3 s by its header, over the 2 s limit") as raised:
        load_audio(short, max_seconds=2.0)
    assert raised.value.reason == "audio_too_long"
    assert len(load_audio(short, max_seconds=MAX_AUDIO_SECONDS)) == 48_000
