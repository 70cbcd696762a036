"""BEAT2 (BEAT-X / EMAGE): conversational speech with SMPL-X + FLAME motion capture.

Corpus: Liu et al., "EMAGE: Towards Unified Holistic Co-Speech Gesture Generation via
Expressive Masked Audio Gesture Modeling", CVPR 2024; ~60 h, 25 speakers, face as FLAME
parameters at 30 fps, word alignments as Praat TextGrids. Licence: CC BY-NC 4.0 (each user
obtains BEAT2 and may use it for non-commercial purposes only; the toolkit ships none of it).

Expected tree (one language folder, passed as `--input`, or a Hub dataset id):

    beat_english_v2.0.0/
      wave16k/<stem>.wav               16 kHz speech
      smplxflame_30/<stem>.npz         betas, poses (T, 165), expressions (T, 100), trans,
                                       mocap_frame_rate (30)
      textgrid/<stem>.TextGrid         word tier; empty marks are pauses (a phone tier,
                                       when an aligner added one, gives the clips' phones)
      train_test_split.csv             id,type with type in train/val/test/additional

Stems are `<speakerId>_<name>_<type>_<start>_<end>`: type 0 is English speech, 1 English
conversation (2-7 other languages). The face is FLAME-103: 100 expressions + jaw pose
`poses[:, 66:69]`; with `--flame-to-arkit` it is converted to ARKit-51 (UniTalker order).
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np

from unitaf_data.dataset import Location
from unitaf_data.face import ARKIT51, ARKIT51_UNITALKER, FLAME103, flame_to_arkit
from unitaf_data.hub import local_or_hub
from unitaf_data.phones import read_textgrid_phones
from unitaf_data.schema import SAMPLE_RATE, Recording, RecordingRef, Word
from unitaf_data.sources import (
    DEFAULT_OPTIONS,
    FACE_FILE_ERRORS,
    InputError,
    SourceOptions,
    corpus_extra,
    corpus_path,
    corpus_storage,
    input_files,
    read_audio,
    read_names,
    require_face_file,
)

NAME = "beat2"
_STEM = re.compile(
    r"^(?P<speaker_id>\d+)_(?P<name>[a-z]+)_(?P<type>\d+)_(?P<start>\d+)_(?P<end>\d+)$")
_EMOTION_BY_INDEX = (  # speech recordings: emotion from the recording index
    (64, "neutral"), (72, "happiness"), (80, "anger"), (86, "sadness"), (94, "contempt"),
    (102, "surprise"), (110, "fear"), (118, "disgust"),
)
JAW_POSE = slice(66, 69)
DEFAULT_ARKIT_NAMES = ARKIT51_UNITALKER  # row order assumed for --flame-to-arkit by default


def emotion_for(kind: int, index: int) -> str:
    """Speech (type 0) recordings carry an emotion by index; conversations are neutral."""
    if kind != 0:
        return "neutral"
    return next((emotion for last, emotion in _EMOTION_BY_INDEX if index <= last), "neutral")


def resolve_input(input_ref: str, options: SourceOptions) -> Path:
    """A local folder as is; otherwise a Hub dataset id, of which only the chosen language
    folder is downloaded."""
    root = local_or_hub(input_ref, [f"{options.language_folder}/*"],
                        "; download BEAT2 yourself and pass its language folder to --input")
    return root if Path(input_ref).exists() else root / options.language_folder


def discover(
    input_dir: str | Path, options: SourceOptions = DEFAULT_OPTIONS
) -> list[RecordingRef]:
    """Recordings listed in `train_test_split.csv` (`additional` only when asked), sorted."""
    storage = corpus_storage(input_dir)
    root = storage or resolve_input(str(input_dir), options)
    split_file = Location(storage, "train_test_split.csv") if storage else \
        Location.of(root / "train_test_split.csv")
    if not split_file.exists():
        raise FileNotFoundError(f"{split_file} not found: --input must be a BEAT2 language "
                                "folder such as beat_english_v2.0.0/")
    text = split_file.read_bytes().decode("utf-8")
    splits = {row["id"].strip(): row["type"].strip()
              for row in csv.DictReader(io.StringIO(text))}
    refs = []
    for stem, split in sorted(splits.items()):
        match = _STEM.match(stem)
        if not match or (split == "additional" and not options.include_additional):
            continue
        kind, index = int(match["type"]), int(match["start"])
        refs.append(RecordingRef(
            source=NAME, speaker=f"{match['speaker_id']}_{match['name']}", recording=stem,
            split="train" if split == "additional" else split,
            audio_path=corpus_path(root, f"wave16k/{stem}.wav"),
            face_path=corpus_path(root, f"smplxflame_30/{stem}.npz"),
            emotion=emotion_for(kind, index),
            extra={"textgrid_path": corpus_path(root, f"textgrid/{stem}.TextGrid"),
                   "flame_to_arkit": options.flame_to_arkit,
                   "arkit_names": options.arkit_names, **corpus_extra(storage)},
        ))
    return refs


def load_flame103(path: Path) -> tuple[np.ndarray, float]:
    """FLAME-103 (expressions + jaw axis-angle) and its frame rate from a BEAT2 npz."""
    try:
        with np.load(path) as data:
            missing = {"expressions", "poses"} - set(data.files)
            if missing:
                raise InputError("unreadable_face", f"{path}: no {', '.join(sorted(missing))}")
            expressions, poses = data["expressions"], data["poses"]
            if expressions.ndim != 2 or poses.ndim != 2 or expressions.shape[1] < 100 or \
                    poses.shape[1] < JAW_POSE.stop or len(expressions) != len(poses):
                raise InputError("unreadable_face", f"{path}: expressions {expressions.shape} "
                                 f"and poses {poses.shape} are not FLAME parameters per frame")
            face = np.concatenate([expressions[:, :100], poses[:, JAW_POSE]], axis=1)
            fps = float(data["mocap_frame_rate"]) if "mocap_frame_rate" in data else 30.0
    except FACE_FILE_ERRORS as error:  # truncated zip, unreadable arrays
        raise InputError("unreadable_face", f"{path}: {type(error).__name__}: {error}") from error
    return face.astype(np.float32), fps


def read_textgrid_words(path: Path) -> list[Word] | None:
    """Non-empty intervals of the word tier (the first tier with 'word' in its name, else
    the first tier), or None when the recording has no TextGrid."""
    if not path.exists():
        return None
    from praatio import textgrid

    grid = textgrid.openTextgrid(str(path), includeEmptyIntervals=False)
    names = grid.tierNames
    tier = grid.getTier(next((n for n in names if "word" in n.lower()), names[0]))
    return [Word(label.strip(), float(start), float(end))
            for start, end, label in tier.entries if label.strip()]


def load(ref: RecordingRef) -> Recording:
    options = ref.extra.get("flame_to_arkit"), ref.extra.get("arkit_names")
    with input_files(ref.extra.get("corpus"), ref.audio_path, ref.face_path,
                     ref.extra["textgrid_path"]) as files, \
            input_files(None, *options) as option_files:
        return _load(ref, *files, *option_files)


def _load(ref: RecordingRef, audio_path: Path, face_path: Path, textgrid: Path,
          matrix_path: Path | None, names_path: Path | None) -> Recording:
    audio = read_audio(audio_path)
    face, fps = load_flame103(require_face_file(face_path))
    face_type, channels = FLAME103.name, FLAME103.channels
    if matrix_path is not None:
        matrix = np.load(matrix_path, allow_pickle=False)
        names = read_names(names_path) if names_path is not None else DEFAULT_ARKIT_NAMES
        face, face_type, channels = flame_to_arkit(face, matrix, names), ARKIT51.name, \
            ARKIT51.channels
    return Recording(ref=ref, audio=audio, sample_rate=SAMPLE_RATE, face=face, face_type=face_type,
                     channels=channels, fps=fps, reference_words=read_textgrid_words(textgrid),
                     reference_phones=read_textgrid_phones(textgrid))
