"""Tiny corpora in each supported layout, made from demo recordings (real eSpeak speech with
a known ARKit face), including the bad inputs a real corpus has."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
from praatio import textgrid
from praatio.utilities.constants import Interval

from unitaf_data.audio import load_audio
from unitaf_data.face import ARKIT51_UNITALKER
from unitaf_data.sources import demo


def demo_recordings(root: Path, minutes: float = 1.4, seed: int = 11) -> list[dict]:
    """Demo recordings: 16 kHz audio, ARKit face (30 fps), timed words and phonemes of each."""
    corpus = demo.prepare(root / "demo-source", minutes=minutes, seed=seed)
    recordings = []
    for ref in demo.discover(corpus):
        timeline = json.loads(Path(ref.extra["timeline_path"]).read_text())
        recordings.append({"audio": load_audio(ref.audio_path), "face": np.load(ref.face_path),
                           "words": timeline["words"], "phonemes": timeline["phonemes"],
                           "text": " ".join(s for s, _, _ in timeline["sentences"])})
    return recordings


def joined(first: dict, second: dict) -> dict:
    """One recording of `first` then `second` (long enough to be cut into several clips);
    `first`'s audio is cut or padded to its face's length so `second` stays aligned."""
    rate, fps = 16000, 30
    cut = round(len(first["face"]) * rate / fps)
    audio = np.pad(first["audio"][:cut], (0, max(0, cut - len(first["audio"]))))
    shift = cut / rate
    return {"audio": np.concatenate([audio, second["audio"]]),
            "face": np.concatenate([first["face"], second["face"]]),
            "words": first["words"] + [[w, s + shift, e + shift] for w, s, e in second["words"]],
            "phonemes": first["phonemes"] + [[p, s + shift, e + shift]
                                             for p, s, e in second["phonemes"]],
            "text": f"{first['text']} {second['text']}"}


def flame_matrix(seed: int = 0) -> np.ndarray:
    """A 51×103 ARKit→FLAME matrix of full row rank, like BEAT2's mat_final.npy."""
    return np.random.default_rng(seed).normal(scale=0.5, size=(51, 103))


def write_textgrid(path: Path, words: list, duration: float, phonemes: list | None = None
                   ) -> None:
    """A word tier and, with `phonemes`, an aligner-style "phones" tier (pauses left empty)."""
    grid = textgrid.Textgrid()
    merged: list[list] = []  # eSpeak gives words it runs together one shared span
    for word, start, end in words:
        if merged and (start, end) == tuple(merged[-1][1:]):
            merged[-1][0] += f" {word}"
        else:
            merged.append([word, start, end])
    entries = [Interval(round(s, 4), round(e, 4), w) for w, s, e in merged if e > s]
    grid.addTier(textgrid.IntervalTier("words", entries, 0.0, duration))
    if phonemes is not None:
        phones = [Interval(round(s, 4), round(e, 4), p) for p, s, e in phonemes
                  if not p.startswith("_") and round(e, 4) > round(s, 4)]
        grid.addTier(textgrid.IntervalTier("phones", phones, 0.0, duration))
    grid.save(str(path), format="long_textgrid", includeBlankSpaces=True)


def write_beat2_recording(root: Path, stem: str, rec: dict, matrix: np.ndarray) -> None:
    flame = rec["face"] @ matrix
    poses = np.zeros((len(flame), 165), np.float32)
    poses[:, 66:69] = flame[:, 100:]
    np.savez(root / "smplxflame_30" / f"{stem}.npz", betas=np.zeros(300), poses=poses,
             expressions=flame[:, :100], trans=np.zeros((len(flame), 3)), mocap_frame_rate=30)
    sf.write(root / "wave16k" / f"{stem}.wav", rec["audio"], 16000, subtype="PCM_16")
    write_textgrid(root / "textgrid" / f"{stem}.TextGrid", rec["words"],
                   len(rec["audio"]) / 16000)


def make_beat2(root: Path, recordings: list[dict]) -> dict[str, str]:
    """A BEAT2 language folder with good and bad recordings; returns {stem: expected}."""
    for folder in ("wave16k", "smplxflame_30", "textgrid", "sem"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    matrix = flame_matrix()
    np.save(root.parent / "mat_final.npy", matrix)
    good = {"2_scott_0_65_65": ("train", recordings[0]), "2_scott_0_3_3": ("val", recordings[1]),
            "4_lawrence_1_1_1": ("test", recordings[2]),
            "2_scott_0_100_100": ("additional", recordings[3])}
    expected = {}
    for stem, (split, rec) in good.items():
        write_beat2_recording(root, stem, rec, matrix)
        expected[stem] = split
    bad = joined(recordings[3], recordings[4])  # ~28 s: the NaN span spoils one clip of it
    for stem in ("6_carla_0_11_11", "6_carla_0_12_12", "6_carla_0_13_13", "6_carla_0_14_14",
                 "6_carla_0_15_15", "6_carla_0_16_16", "6_carla_0_17_17"):
        write_beat2_recording(root, stem, bad, matrix)
    wave, faces = root / "wave16k", root / "smplxflame_30"
    (wave / "6_carla_0_11_11.wav").write_bytes(b"RIFF\x00\x00garbage")
    expected["6_carla_0_11_11"] = "unreadable_audio"
    data = (faces / "6_carla_0_12_12.npz").read_bytes()
    (faces / "6_carla_0_12_12.npz").write_bytes(data[: len(data) // 3])
    expected["6_carla_0_12_12"] = "unreadable_face"
    (faces / "6_carla_0_13_13.npz").unlink()
    expected["6_carla_0_13_13"] = "missing_face"
    longer = np.concatenate([bad["face"], bad["face"][:30]]) @ matrix  # 1 s too long
    poses = np.zeros((len(longer), 165))
    np.savez(faces / "6_carla_0_14_14.npz", poses=poses, expressions=longer[:, :100],
             mocap_frame_rate=30)
    expected["6_carla_0_14_14"] = "face_audio_length_mismatch"
    sf.write(wave / "6_carla_0_15_15.wav", np.zeros_like(bad["audio"]), 16000)
    expected["6_carla_0_15_15"] = "silent_audio"
    noise = np.random.default_rng(1).normal(scale=0.05, size=len(bad["audio"]))
    sf.write(wave / "6_carla_0_16_16.wav", noise, 16000)
    (root / "textgrid" / "6_carla_0_16_16.TextGrid").unlink()
    expected["6_carla_0_16_16"] = "empty_transcript"
    with np.load(faces / "6_carla_0_17_17.npz") as npz:
        arrays = dict(npz)
    arrays["expressions"][90:100] = np.nan  # 3.0-3.33 s: only the clip touching it goes
    np.savez(faces / "6_carla_0_17_17.npz", **arrays)
    expected["6_carla_0_17_17"] = "nan_span"
    rows = [f"{stem},{'train' if stem.startswith('6_') else split}"
            for stem, split in expected.items()] + ["7_broken_name,train"]
    (root / "train_test_split.csv").write_text("id,type\n" + "\n".join(rows) + "\n")
    return expected


def make_folder(root: Path, recordings: list[dict]) -> None:
    """Three speakers, one face format each: .npy + names file (and .txt), .csv (and a
    TextGrid with word and phone tiers), BEAT-v1 .json (no transcript)."""
    names_file = root / "channels.txt"
    root.mkdir(parents=True, exist_ok=True)
    names_file.write_text("\n".join(ARKIT51_UNITALKER))
    for speaker, rec, face_format in (("alice", recordings[0], "npy"),
                                      ("bob", recordings[3], "csv"),
                                      ("carol", recordings[4], "json")):
        folder = root / speaker
        folder.mkdir()
        sf.write(folder / "take1.flac", rec["audio"], 16000)
        face = rec["face"]
        if face_format == "npy":
            np.save(folder / "take1.npy", face)
            (folder / "take1.txt").write_text(rec["text"])
        elif face_format == "csv":
            header = ",".join(["timecode", *[n.lower() for n in reversed(ARKIT51_UNITALKER)]])
            rows = [",".join([f"{i / 30:.4f}", *map(str, frame[::-1])])
                    for i, frame in enumerate(face)]
            (folder / "take1.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
            write_textgrid(folder / "take1.TextGrid", rec["words"], len(rec["audio"]) / 16000,
                           rec["phonemes"])
        else:  # BEAT-v1 ARKit json at 60 fps: every 30 fps frame twice
            doubled = np.repeat(face, 2, axis=0)
            (folder / "take1.json").write_text(json.dumps(
                {"names": list(ARKIT51_UNITALKER),
                 "frames": [{"weights": f.tolist()} for f in doubled]}))
    sf.write(root / "alice" / "orphan.wav", recordings[0]["audio"][:16000], 16000)


def make_unitalker(root: Path, recordings: list[dict]) -> None:
    for split, rec in (("train", recordings[0]), ("val", recordings[1])):
        (root / "audio").mkdir(parents=True, exist_ok=True)
        (root / "annot").mkdir(exist_ok=True)
        sf.write(root / "audio" / f"{split}_0.wav", rec["audio"], 16000)
        np.save(root / "annot" / f"{split}_0.npy", rec["face"])
        (root / f"{split}.json").write_text(json.dumps([
            {"audio_path": f"audio/{split}_0.wav", "annot_path": f"annot/{split}_0.npy",
             "id": f"subject_{split}", "annot_type": "inhouse_blendshape_weight", "fps": 30}]))
