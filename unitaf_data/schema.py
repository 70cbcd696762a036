"""The dataset contract's records: recordings, words, phones, clips, rejections, keys, the
dataset's and each feature set's self-description, and validation.

Everything a stage hands to the next is one of these small dataclasses. Times are in
seconds (`start`, `end`, `duration`), rates in Hz (`sample_rate`, `fps`). The records that are
written to disk (`ClipMeta`: a sample's `json`; `DatasetInfo`: `unitaf.json`;
`FeatureSetInfo`: `features/{set}/feature.json`) have a `to_dict` and a `from_dict` that
refuses what it does not understand (unknown keys, missing keys, wrong types), so a file
from elsewhere is either read exactly or refused with a message naming the key.
`validate_clip` asserts the alignment contract of DESIGN.md.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from unitaf_data.records import RecordError, positive, record_keys, seconds, typed

SCHEMA_VERSION = 2  # 2: phones in the clip json; per-shard sample counts and sha256
SAMPLE_RATE = 16_000
_KEY_PART = re.compile(r"[^A-Za-z0-9_]+")


def key_part(text: str) -> str:
    """A path part made safe for a sample key: letters, digits and `_` only."""
    cleaned = _KEY_PART.sub("_", text).strip("_")
    if not cleaned:
        raise ValueError(f"cannot build a key part from {text!r}")
    return cleaned


def make_key(source: str, speaker: str, recording: str, clip_index: int) -> str:
    """`{source}-{speaker}-{recording}-{clip:04d}`: unique, no `.` or `/`."""
    return f"{key_part(source)}-{key_part(speaker)}-{key_part(recording)}-{clip_index:04d}"


@dataclass(frozen=True)
class RecordingRef:
    """One recording as discovered: where its files are and its labels, no data loaded."""

    source: str
    speaker: str
    recording: str
    split: str
    audio_path: str
    face_path: str
    emotion: str = "neutral"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{key_part(self.source)}-{key_part(self.speaker)}-{key_part(self.recording)}"


@dataclass
class Recording:
    """A loaded recording: 16 kHz mono audio and a face track on the same clock."""

    ref: RecordingRef
    audio: np.ndarray  # float32 (N,) at sample_rate
    sample_rate: int
    face: np.ndarray  # float32 (T, C) at fps
    face_type: str
    channels: tuple[str, ...]
    fps: float
    reference_words: list[Word] | None = None  # timed transcript (e.g. a TextGrid)
    reference_text: str | None = None  # untimed transcript
    reference_phones: list[Phone] | None = None  # timed phones (recording seconds)

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float
    prob: float = 1.0


@dataclass(frozen=True)
class AsrSegment:
    """One decoder segment of the ASR with the statistics used to spot hallucinations."""

    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float


@dataclass
class Transcript:
    words: list[Word]
    segments: list[AsrSegment]
    language: str
    model: str


@dataclass(frozen=True)
class ClipSpan:
    """A clip in recording time: `start` on a face-frame boundary, `num_frames` frames long."""

    index: int
    start: float
    num_frames: int
    fps: float

    @property
    def end(self) -> float:
        return self.start + self.num_frames / self.fps

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    def first_frame(self) -> int:
        return round(self.start * self.fps)

    def num_samples(self, sample_rate: int) -> int:
        return round(self.num_frames * sample_rate / self.fps)

    def first_sample(self, sample_rate: int) -> int:
        return round(self.start * sample_rate)


@dataclass(frozen=True)
class Rejection:
    """A recording or clip that was dropped: what it is, where it came from and why."""

    what: str  # "recording" or "clip"
    where: str  # recording id or clip key
    reason: str  # short, countable: `dropped_{reason}`
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def validate_clip(audio: np.ndarray, face: np.ndarray, meta: ClipMeta, channels: int) -> None:
    """Assert the alignment contract for one clip; every message names the key."""
    key = meta.key
    assert re.fullmatch(r"[A-Za-z0-9_-]+", key), f"{key}: key has characters other than " \
        "letters, digits, '_' and '-'"
    assert face.dtype == np.float32 and face.ndim == 2, f"{key}: face must be float32 (T, C)"
    assert face.shape[1] == channels, f"{key}: face has {face.shape[1]} channels, not {channels}"
    frames = face.shape[0]
    assert frames == meta.num_frames, f"{key}: {frames} face frames, num_frames {meta.num_frames}"
    expected = frames * meta.sample_rate / meta.fps
    assert abs(len(audio) - round(expected)) <= 1, (
        f"{key}: {len(audio)} samples for {frames} frames (expected {expected:.1f})"
    )
    assert abs(meta.duration - frames / meta.fps) < 1e-6, f"{key}: duration != T/fps"
    for timed in (*meta.words, *(meta.phones or ())):
        label = getattr(timed, "word", None) or getattr(timed, "phone", "")
        assert 0.0 <= timed.start <= timed.end <= meta.duration + 1e-6, (
            f"{key}: {label!r} [{timed.start}, {timed.end}] outside the clip"
        )
    assert np.isfinite(face).all(), f"{key}: face has NaN or inf"


# --- records written to disk ----------------------------------------------------------------


def _timed(item: Any, what: str, label: str) -> tuple[str, float, float]:
    """(label, start, end) of a `{label, start, end}` record with 0 <= start <= end."""
    start, end = seconds(item["start"], f"{what}.start"), seconds(item["end"], f"{what}.end")
    if end < start:
        raise RecordError(f"{what}: ends ({end}) before it starts ({start})")
    return typed(item[label], str, f"{what}.{label}"), start, end


def word_from_dict(data: Any, what: str = "word") -> Word:
    item = record_keys(data, what, {"word", "start", "end"}, {"prob"})
    word, start, end = _timed(item, what, "word")
    return Word(word, start, end, typed(item.get("prob", 1.0), float, f"{what}.prob"))


def word_to_dict(word: Word) -> dict[str, Any]:
    return {"word": word.word, "start": word.start, "end": word.end, "prob": word.prob}


@dataclass(frozen=True)
class Phone:
    """One phone with its time span; the label as the corpus spells it (eSpeak mnemonic,
    ARPAbet, ...)."""

    phone: str
    start: float
    end: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: Any, what: str = "phone") -> Phone:
        return Phone(*_timed(record_keys(data, what, {"phone", "start", "end"}), what, "phone"))


PHONE_SOURCES = ("corpus", "estimated")  # a corpus's own timing, or estimated from words


@dataclass(frozen=True)
class AsrInfo:
    """What the ASR said about a clip: its model, its own text and the statistics used to
    spot hallucinations (`avg_logprob` is -inf where no decoder segment overlaps)."""

    model: str
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: Any, what: str = "asr") -> AsrInfo:
        item = record_keys(data, what, {"model", "text", "avg_logprob", "no_speech_prob",
                                  "compression_ratio"})
        return AsrInfo(
            typed(item["model"], str, f"{what}.model"), typed(item["text"], str, f"{what}.text"),
            *(typed(item[k], float, f"{what}.{k}")
              for k in ("avg_logprob", "no_speech_prob", "compression_ratio")))


@dataclass(frozen=True)
class ClipMeta:
    """The `json` member of a sample: a clip's text and word times (clip-relative), labels,
    where it was cut from, its rates and quality fields. Corpus extras go in `custom`."""

    key: str
    text: str
    text_source: str  # "asr" or "reference"
    words: tuple[Word, ...]
    language: str
    speaker: str
    emotion: str
    split: str
    source: str
    recording: str
    start: float  # seconds into the source recording, on a face-frame boundary
    end: float
    duration: float
    sample_rate: int
    fps: float
    face_type: str
    num_frames: int
    rms_db: float
    asr: AsrInfo
    reference_text: str | None = None
    wer: float | None = None
    phones: tuple[Phone, ...] | None = None  # clip-relative, where phone timing is known
    phones_source: str | None = None  # one of PHONE_SOURCES
    custom: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; optional fields that are None are left out."""
        data: dict[str, Any] = {
            "key": self.key, "text": self.text, "text_source": self.text_source,
            "words": [word_to_dict(w) for w in self.words], "language": self.language,
            "speaker": self.speaker, "emotion": self.emotion, "split": self.split,
            "source": self.source, "recording": self.recording, "start": self.start,
            "end": self.end, "duration": self.duration, "sample_rate": self.sample_rate,
            "fps": self.fps, "face_type": self.face_type, "num_frames": self.num_frames,
            "rms_db": self.rms_db, "asr": self.asr.to_dict(),
            "reference_text": self.reference_text, "wer": self.wer,
            "phones": None if self.phones is None else [p.to_dict() for p in self.phones],
            "phones_source": self.phones_source, "custom": self.custom or None,
        }
        return {k: v for k, v in data.items() if v is not None}

    @staticmethod
    def from_dict(data: Any, what: str = "clip json") -> ClipMeta:
        names = {f.name for f in dataclasses.fields(ClipMeta)}
        optional = {"reference_text", "wer", "phones", "phones_source", "custom"}
        item = record_keys(data, what, names - optional, optional)
        text = {k: typed(item[k], str, f"{what}.{k}") for k in (
            "key", "text", "text_source", "language", "speaker", "emotion", "split", "source",
            "recording", "face_type")}
        phones = item.get("phones")
        source = item.get("phones_source")
        if (phones is None) != (source is None) or (source is not None
                                                   and source not in PHONE_SOURCES):
            raise RecordError(f"{what}: phones need a phones_source in {PHONE_SOURCES}")
        meta = ClipMeta(
            **text,
            words=tuple(word_from_dict(w, f"{what}.words[{i}]")
                        for i, w in enumerate(typed(item["words"], list, f"{what}.words"))),
            start=seconds(item["start"], f"{what}.start"),
            end=seconds(item["end"], f"{what}.end"),
            duration=positive(item["duration"], f"{what}.duration"),
            sample_rate=positive(item["sample_rate"], f"{what}.sample_rate", int),
            fps=positive(item["fps"], f"{what}.fps"),
            num_frames=positive(item["num_frames"], f"{what}.num_frames", int),
            rms_db=typed(item["rms_db"], float, f"{what}.rms_db"),
            asr=AsrInfo.from_dict(item["asr"], f"{what}.asr"),
            reference_text=typed(item.get("reference_text"), (str, type(None)),
                                  f"{what}.reference_text"),
            wer=typed(item.get("wer"), (float, type(None)), f"{what}.wer"),
            phones=None if phones is None else tuple(
                Phone.from_dict(p, f"{what}.phones[{i}]")
                for i, p in enumerate(typed(phones, list, f"{what}.phones"))),
            phones_source=source,
            custom=typed(item.get("custom", {}), dict, f"{what}.custom"),
        )
        if abs(meta.duration - meta.num_frames / meta.fps) > 1e-6:
            raise RecordError(f"{what}: duration {meta.duration} is not num_frames / fps")
        return meta


@dataclass(frozen=True)
class ShardInfo:
    """What a shard holds, recorded when it is written: checked whenever it is read."""

    samples: int
    bytes: int
    sha256: str
    keys_sha256: str  # sha256 of the sample keys joined by newlines: sidecars must match

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: Any, what: str = "shard") -> ShardInfo:
        item = record_keys(data, what, {"samples", "bytes", "sha256", "keys_sha256"})
        info = ShardInfo(typed(item["samples"], int, f"{what}.samples"),
                         typed(item["bytes"], int, f"{what}.bytes"),
                         typed(item["sha256"], str, f"{what}.sha256"),
                         typed(item["keys_sha256"], str, f"{what}.keys_sha256"))
        if info.samples < 1 or info.bytes < 1 or not all(
                re.fullmatch(r"[0-9a-f]{64}", h) for h in (info.sha256, info.keys_sha256)):
            raise RecordError(f"{what}: not a valid shard record")
        return info


def _shard_table(data: Any, what: str) -> dict[str, ShardInfo]:
    table = typed(data, dict, what)
    return {name: ShardInfo.from_dict(info, f"{what}[{name}]") for name, info in table.items()}


@dataclass(frozen=True)
class DatasetInfo:
    """`unitaf.json`: the dataset's face type and rates, build settings, counts and shards
    (by `{split}/{split}-NNNNNN`)."""

    source: str
    face_type: str
    channels: tuple[str, ...]
    fps: float
    sample_rate: int
    build_settings: dict[str, Any]
    counts: dict[str, Any]
    shards: dict[str, ShardInfo]
    schema_version: int = SCHEMA_VERSION
    tool_version: str = "0+unknown"

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": self.schema_version, "tool_version": self.tool_version,
                "source": self.source, "face_type": self.face_type,
                "channels": list(self.channels), "fps": self.fps,
                "sample_rate": self.sample_rate, "build_settings": self.build_settings,
                "counts": self.counts,
                "shards": {name: info.to_dict() for name, info in self.shards.items()}}

    @staticmethod
    def from_dict(data: Any, what: str = "unitaf.json") -> DatasetInfo:
        names = {f.name for f in dataclasses.fields(DatasetInfo)}
        item = record_keys(data, what, names)
        version = typed(item["schema_version"], int, f"{what}.schema_version")
        if version != SCHEMA_VERSION:
            raise RecordError(f"{what}: schema version {version}; this unitaf reads version "
                              f"{SCHEMA_VERSION}: rebuild the dataset with this version")
        channels = tuple(typed(c, str, f"{what}.channels[]")
                         for c in typed(item["channels"], list, f"{what}.channels"))
        if not channels or len(set(channels)) != len(channels):
            raise RecordError(f"{what}: channels must be distinct names")
        return DatasetInfo(
            source=typed(item["source"], str, f"{what}.source"),
            face_type=typed(item["face_type"], str, f"{what}.face_type"),
            channels=channels, fps=positive(item["fps"], f"{what}.fps"),
            sample_rate=positive(item["sample_rate"], f"{what}.sample_rate", int),
            build_settings=typed(item["build_settings"], dict, f"{what}.build_settings"),
            counts=typed(item["counts"], dict, f"{what}.counts"),
            shards=_shard_table(item["shards"], f"{what}.shards"),
            schema_version=version,
            tool_version=typed(item["tool_version"], str, f"{what}.tool_version"))


_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8")


@dataclass(frozen=True)
class FieldSpec:
    """One array field of a feature set: its dtype and shape, `"T"` for the time axis."""

    dtype: str
    shape: tuple[int | str, ...]

    @property
    def time_varying(self) -> bool:
        return bool(self.shape) and self.shape[0] == "T"

    def to_dict(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "shape": list(self.shape)}

    @staticmethod
    def from_dict(data: Any, what: str = "field") -> FieldSpec:
        item = record_keys(data, what, {"dtype", "shape"})
        dtype = typed(item["dtype"], str, f"{what}.dtype")
        shape = tuple(typed(item["shape"], list, f"{what}.shape"))
        if dtype not in _DTYPES:
            raise RecordError(f"{what}: dtype {dtype!r} is not one of {', '.join(_DTYPES)}")
        sizes = shape[1:] if shape[:1] == ("T",) else shape
        if not 1 <= len(shape) <= 2 or not all(
                isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in sizes):
            raise RecordError(f"{what}: shape {list(shape)} is not (T,), (T, D), (D,) or (N, D)")
        return FieldSpec(dtype, shape)


@dataclass(frozen=True)
class FeatureChecks:
    """What the extraction checked: clips, hours, refusals (rejection records) and problems
    counted by kind, with the first few examples."""

    clips: int
    audio_hours: float
    refused: tuple[Rejection, ...] = ()
    problems: dict[str, int] = field(default_factory=dict)  # frames_off, non_finite, bad_shape
    examples: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"clips": self.clips, "audio_hours": self.audio_hours,
                "refused": [r.to_dict() for r in self.refused], "problems": self.problems,
                "examples": list(self.examples)}

    @staticmethod
    def from_dict(data: Any, what: str = "checks") -> FeatureChecks:
        item = record_keys(data, what, {"clips", "audio_hours", "refused", "problems", "examples"})
        refused = []
        for i, row in enumerate(typed(item["refused"], list, f"{what}.refused")):
            row = record_keys(row, f"{what}.refused[{i}]", {"what", "where", "reason", "detail"})
            refused.append(Rejection(**{k: typed(v, str, f"{what}.refused[{i}].{k}")
                                        for k, v in row.items()}))
        return FeatureChecks(
            typed(item["clips"], int, f"{what}.clips"),
            typed(item["audio_hours"], float, f"{what}.audio_hours"), tuple(refused),
            {k: typed(v, int, f"{what}.problems.{k}")
             for k, v in typed(item["problems"], dict, f"{what}.problems").items()},
            tuple(typed(e, str, f"{what}.examples[]")
                  for e in typed(item["examples"], list, f"{what}.examples")))


@dataclass(frozen=True)
class FeatureSetInfo:
    """`features/{set}/feature.json`: the backend and model files (with hashes) a feature set
    was computed with, its fields, frame rate and dims, the licences of the weights it
    derives from, the settings of the run that wrote it, checks and shards. Backend extras
    (a units set's centroids, a pooling rule) go in `custom`."""

    name: str
    backend: str
    model: dict[str, Any]
    fields: dict[str, FieldSpec]
    frame_rate: float | None
    dims: int | None
    settings: dict[str, Any]
    checks: FeatureChecks
    shards: dict[str, ShardInfo]
    licences: dict[str, str] = field(default_factory=dict)
    tool_version: str = "0+unknown"
    custom: dict[str, Any] = field(default_factory=dict)

    def field_spec(self, name: str) -> FieldSpec:
        if name not in self.fields:
            raise KeyError(f"feature set {self.name} has no field {name}; it has "
                           f"{', '.join(self.fields)}")
        return self.fields[name]

    def input_width(self, field_name: str, kind: str) -> int:
        """Width of a (T, D) field for a `precomputed` input, or the vocabulary size of a
        (T,) integer code field for a `units` input."""
        spec = self.field_spec(field_name)
        if kind == "units" and spec.shape == ("T",) and spec.dtype.startswith("int") \
                and self.dims:
            return int(self.dims)
        if kind == "precomputed" and len(spec.shape) == 2 and spec.time_varying:
            return int(spec.shape[1])
        wanted = "(T,) integer codes" if kind == "units" else "(T, D) features"
        raise ValueError(f"{self.name}/{field_name} is {spec.dtype} {list(spec.shape)}, not "
                         f"the {wanted} a {kind} input needs")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "backend": self.backend, "model": self.model,
                "fields": {k: v.to_dict() for k, v in self.fields.items()},
                "frame_rate": self.frame_rate, "dims": self.dims, "settings": self.settings,
                "checks": self.checks.to_dict(),
                "shards": {k: v.to_dict() for k, v in self.shards.items()},
                "licences": self.licences, "tool_version": self.tool_version,
                "custom": self.custom}

    @staticmethod
    def from_dict(data: Any, what: str = "feature.json") -> FeatureSetInfo:
        names = {f.name for f in dataclasses.fields(FeatureSetInfo)}
        item = record_keys(data, what, names)
        fields = typed(item["fields"], dict, f"{what}.fields")
        if not fields:
            raise RecordError(f"{what}: no fields")
        return FeatureSetInfo(
            name=typed(item["name"], str, f"{what}.name"),
            backend=typed(item["backend"], str, f"{what}.backend"),
            model=typed(item["model"], dict, f"{what}.model"),
            fields={_member_name(k, f"{what}.fields"): FieldSpec.from_dict(v, f"{what}.{k}")
                    for k, v in fields.items()},
            frame_rate=None if item["frame_rate"] is None else positive(
                item["frame_rate"], f"{what}.frame_rate"),
            dims=None if item["dims"] is None else positive(item["dims"], f"{what}.dims", int),
            settings=typed(item["settings"], dict, f"{what}.settings"),
            checks=FeatureChecks.from_dict(item["checks"], f"{what}.checks"),
            shards=_shard_table(item["shards"], f"{what}.shards"),
            licences={k: typed(v, str, f"{what}.licences.{k}")
                      for k, v in typed(item["licences"], dict, f"{what}.licences").items()},
            tool_version=typed(item["tool_version"], str, f"{what}.tool_version"),
            custom=typed(item["custom"], dict, f"{what}.custom"))


_MEMBER = re.compile(r"[a-z][a-z0-9_]*\.npy")


def _member_name(name: str, what: str) -> str:
    """A sidecar field is stored as a tar member `{key}.{name}`: `name` must be a plain
    `word.npy`."""
    if not _MEMBER.fullmatch(name):
        raise RecordError(f"{what}: {name!r} is not a field name like teacher.npy")
    return name
