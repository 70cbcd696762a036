"""The dataset contract in code: where everything lives in a dataset folder, and reading it.

    DATASET/
      README.md                                   Hub dataset card
      unitaf.json                                 DatasetInfo (with every main shard's record)
      manifest.parquet, rejected.parquet          one row per clip / per dropped item
      data/{split}/{split}-NNNNNN.tar             main shards: flac, face.npy, json
      features/{set}/feature.json                 FeatureSetInfo (with every sidecar's record)
      features/{set}/{split}/{split}-NNNNNN.tar   sidecar shards: same keys, same order
      features/units/centroids.npy, fit.json      the fitted offline units
      .build/, features/.build/{set}/             work folders of build and extraction
                                                  (markers, settings): never published

`DatasetLayout` knows these paths (nothing else in the project spells them out);
`Dataset.open_folder` opens a dataset once, a folder or an object-store URL (`s3://`,
`gs://`), and reads it: the typed records, the shards of a split, a shard's sidecar, the
manifest, and samples joined with their sidecars through the safe reader
(`unitaf_data.reader`). Nothing here downloads: `unitaf_data.hub.open_dataset` resolves a
folder, a URL or a Hub id and then calls `open_folder`.

Where the files live is this module's storage layer (`unitaf_data.storage`, re-exported
here): a dataset's root is a `Storage` made from the user's path or URL, and every file is
a checked key below it, read as a stream. Nothing else in the project opens a dataset file
by a string.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unitaf_data import owned
from unitaf_data.owned import MARKER
from unitaf_data.reader import (
    ShardError,
    Skips,
    decode_array,
    decode_json,
    decode_record,
    decode_text,
    sha256_of,
    stream_samples,
    verified_stream,
)
from unitaf_data.schema import (
    ClipMeta,
    DatasetInfo,
    FeatureSetInfo,
    FieldSpec,
    RecordError,
    ShardInfo,
)
from unitaf_data.storage import Location as Location  # re-exported: the storage layer
from unitaf_data.storage import ObjectRecord as ObjectRecord  # belongs to this module
from unitaf_data.storage import Storage as Storage
from unitaf_data.storage import StorageError as StorageError
from unitaf_data.storage import check_key as check_key
from unitaf_data.storage import is_url as is_url

# in this order everywhere; test_speaker: a speaker (and sentences) no other split has
SPLITS = ("train", "val", "test", "test_speaker")
MAIN_FIELDS = ("face.npy", "flac", "json")  # in this order in every main sample
REFUSED_FIELD = "rejected.txt"  # a sidecar sample the backend refused holds only this
_SPLIT = "|".join(sorted(SPLITS, key=len, reverse=True))  # test_speaker before test
_SHARD_ID = re.compile(rf"({_SPLIT})/({_SPLIT})-(\d{{6}})")
_SET_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_SET_RECORD = re.compile(
    r"features/([a-z][a-z0-9_]{0,63})/(feature\.json|fit\.json|centroids\.npy)")


@dataclass(frozen=True, order=True)
class ShardRef:
    """One shard of a split: `id` `{split}/{split}-NNNNNN` names it in every shard table."""

    split: str
    index: int

    @property
    def name(self) -> str:
        return f"{self.split}-{self.index:06d}"

    @property
    def id(self) -> str:
        return f"{self.split}/{self.name}"

    @staticmethod
    def parse(shard_id: str) -> ShardRef:
        match = _SHARD_ID.fullmatch(shard_id)
        if not match or match[1] != match[2]:
            raise RecordError(f"{shard_id!r} is not a shard id like train/train-000000")
        return ShardRef(match[1], int(match[3]))


def split_order(split: str) -> int:
    return SPLITS.index(split) if split in SPLITS else len(SPLITS)


def keys_digest(keys: Iterable[str]) -> str:
    """The `keys_sha256` of a shard: its sample keys in order, joined by newlines."""
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


def check_set_name(name: str) -> str:
    if not _SET_NAME.fullmatch(name) or name == "units_fit":
        raise ValueError(f"{name!r} is not a feature set name")
    return name


class DatasetLayout:
    """Every file of a dataset: `*_KEY` and `*_relative` are keys below the root (`store`);
    the Path properties are those files on a local disk (local datasets only)."""

    WORK = ".build"
    INFO_KEY, MANIFEST_KEY, REJECTED_KEY, CARD_KEY = (
        "unitaf.json", "manifest.parquet", "rejected.parquet", "README.md")
    PUBLISH_IGNORE = (".build/*", "features/.build/*", "*.tmp", "*/.build/*", MARKER,
                      f"*/{MARKER}")

    def __init__(self, root: str | Path | Storage) -> None:
        self.store = root if isinstance(root, Storage) else Storage.of(root)
        self.root: Path | str = (Path(root) if isinstance(root, str | Path) and not is_url(root)
                                 else self.store.local_path() if self.store.is_local
                                 else self.store.root)

    def __repr__(self) -> str:
        return f"DatasetLayout({self.root})"

    def _local(self, key: str) -> Path:
        return Path(self.root) / key if self.store.is_local else self.store.local_path(key)

    @property
    def info(self) -> Path:
        return self._local(self.INFO_KEY)

    @property
    def manifest(self) -> Path:
        return self._local(self.MANIFEST_KEY)

    @property
    def rejected(self) -> Path:
        return self._local(self.REJECTED_KEY)

    @property
    def card(self) -> Path:
        return self._local(self.CARD_KEY)

    @property
    def work(self) -> Path:
        """The build's markers and settings (and the demo corpus it synthesised)."""
        return self._local(self.WORK)

    @property
    def features(self) -> Path:
        return self._local("features")

    @property
    def units(self) -> Path:
        """The fitted offline units (`fit-units`)."""
        return self.features / "units"

    def shard(self, shard: ShardRef) -> Path:
        return self._local(self.shard_relative(shard))

    @staticmethod
    def shard_relative(shard: ShardRef) -> str:
        return f"data/{shard.split}/{shard.name}.tar"

    def feature_dir(self, feature_set: str) -> Path:
        return self.features / check_set_name(feature_set)

    def feature_info(self, feature_set: str) -> Path:
        return self.feature_dir(feature_set) / "feature.json"

    @staticmethod
    def feature_info_key(feature_set: str) -> str:
        return f"features/{check_set_name(feature_set)}/feature.json"

    def feature_work(self, feature_set: str) -> Path:
        """Extraction markers and the settings of the run writing `feature_set`."""
        return self.features / self.WORK / check_set_name(feature_set)

    @staticmethod
    def feature_work_key(feature_set: str) -> str:
        return f"features/{DatasetLayout.WORK}/{check_set_name(feature_set)}"

    def sidecar(self, feature_set: str, shard: ShardRef) -> Path:
        return self._local(self.sidecar_relative(feature_set, shard))

    @staticmethod
    def sidecar_relative(feature_set: str, shard: ShardRef) -> str:
        return f"features/{check_set_name(feature_set)}/{shard.split}/{shard.name}.tar"

    @staticmethod
    def is_set_record(relative: str) -> bool:
        """Whether `relative` is a feature set's record: `features/{set}/feature.json`, or
        the fitted units' `centroids.npy` / `fit.json` beside it (the files of a set that
        are not shards)."""
        match = _SET_RECORD.fullmatch(relative)
        return bool(match) and match[1] != "units_fit"

    def feature_set_names(self) -> list[str]:
        """Feature sets whose feature.json exists (written once all their shards are)."""
        if self.store.is_local:
            found = ([p.parent.name for p in self.features.glob("*/feature.json")]
                     if self.features.is_dir() else [])
        else:
            found = [key.split("/")[1] for key in self.store.list("features")
                     if key.count("/") == 2 and key.endswith("/feature.json")]
        return sorted(name for name in found if _SET_NAME.fullmatch(name))


def check_feature_folder(layout: DatasetLayout, name: str, claim: bool = False
                         ) -> Path | None:
    """`features/{name}`, refused (ForeignFolder) unless it is absent, empty or a feature set
    the toolkit made (`unitaf_data.owned`); with `claim`, created and marked when new. The
    marks are for local folders: a dataset at a storage URL is the prefix the user named
    (None)."""
    if not layout.store.is_local:
        return None
    folder, advice = layout.feature_dir(name), f"move it out of {layout.features} first"
    if claim:
        return owned.claim(folder, "feature_set", advice)
    owned.check_owned(folder, "feature_set", advice)
    return folder


def remove_feature_set(layout: DatasetLayout, name: str) -> None:
    """Delete a feature set's sidecars, feature.json and extraction markers (other files in
    its folder, such as fitted unit centroids, stay): in a local folder only when it is the
    toolkit's feature set (`unitaf_data.owned`); anything else is refused and left as it
    is."""
    check_feature_folder(layout, name)
    folder = f"features/{check_set_name(name)}"
    for split in SPLITS:
        layout.store.remove(f"{folder}/{split}")
    layout.store.remove(layout.feature_info_key(name))
    layout.store.remove(layout.feature_work_key(name))


def read_json_file(path: Path | Location) -> Any:
    location = Location.of(path)
    try:
        return json.loads(location.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise RecordError(f"{location}: not valid JSON ({str(error)[:200]})") from None


@dataclass
class Sample:
    """One clip read from a main shard and the sidecars asked for."""

    key: str
    shard: str
    meta: ClipMeta
    face: np.ndarray  # float32 (T, C) at meta.fps
    flac: bytes
    features: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # set → the backend's reason

    def audio(self) -> np.ndarray:
        """The clip's 16 kHz mono waveform, checked against the alignment contract."""
        from unitaf_data.audio import AUDIO_ERRORS, decode_flac

        try:
            audio, sample_rate = decode_flac(self.flac)
        except AUDIO_ERRORS as error:  # libsndfile raises its own error types for bad data
            raise ShardError(self.shard, "unreadable audio", self.key, "flac",
                             f"{type(error).__name__}: {error}") from None
        expected = round(self.meta.num_frames * self.meta.sample_rate / self.meta.fps)
        if sample_rate != self.meta.sample_rate or audio.ndim != 1 or \
                abs(len(audio) - expected) > 1:
            raise ShardError(self.shard, "audio does not match the clip", self.key, "flac",
                             f"{len(audio)} samples at {sample_rate} Hz, expected {expected}")
        return audio.astype(np.float32)


class Dataset:
    """A dataset opened once: its records, shards and samples. Files are reached through
    the layout's storage (a local folder or an object-store prefix), or for a Hub dataset
    through `fetch(relative_path)`, which downloads them."""

    def __init__(self, layout: DatasetLayout, info: DatasetInfo,
                 fetch: Callable[[str], Path] | None = None,
                 origin: dict[str, Any] | None = None) -> None:
        self.layout, self.info = layout, info
        self._fetch = fetch
        self.origin = origin or (
            {"path": str(Path(layout.root).resolve())} if layout.store.is_local
            else {"url": layout.store.root})
        self._feature_sets: dict[str, FeatureSetInfo] = {}

    @staticmethod
    def open_folder(root: str | Path, fetch: Callable[[str], Path] | None = None,
                    origin: dict[str, Any] | None = None) -> Dataset:
        """A dataset folder (`fetch`: how its files are reached when they are not in it yet;
        a Hub dataset is opened by `unitaf_data.hub.open_dataset`)."""
        layout = DatasetLayout(root)
        where = layout.store / layout.INFO_KEY
        if not where.exists():
            raise FileNotFoundError(f"{layout.root} is not a unitaf dataset (no unitaf.json)")
        info = DatasetInfo.from_dict(read_json_file(where), str(where))
        return Dataset(layout, info, fetch, origin)

    @property
    def root(self) -> Path | str:
        return self.layout.root

    @property
    def store(self) -> Storage:
        return self.layout.store

    def __repr__(self) -> str:
        return f"Dataset({self.origin})"

    def local(self, relative: str) -> Path:
        """A file of a local or Hub dataset on this machine's disk."""
        return self._fetch(relative) if self._fetch else self.layout._local(relative)

    def location(self, relative: str) -> Location:
        """A file of the dataset wherever it is (downloaded first for a Hub dataset)."""
        return Location.of(self._fetch(relative)) if self._fetch else self.store / relative

    def file_sha256(self, relative: str) -> str:
        """sha256 of one of the dataset's (small) record files, wherever it is."""
        return hashlib.sha256(self.location(relative).read_bytes()).hexdigest()

    # --- records ---------------------------------------------------------------------------

    @property
    def splits(self) -> list[str]:
        return sorted({ShardRef.parse(s).split for s in self.info.shards}, key=split_order)

    def shards(self, split: str | None = None) -> list[ShardRef]:
        """The main shards the dataset declares (all, or of one split), in order."""
        refs = sorted((ShardRef.parse(s) for s in self.info.shards),
                      key=lambda r: (split_order(r.split), r.index))
        return [r for r in refs if split is None or r.split == split]

    def feature_set_names(self) -> list[str]:
        return self.layout.feature_set_names()

    def feature_set(self, name: str) -> FeatureSetInfo:
        """A complete feature set's record (a clear error naming the command otherwise)."""
        if name not in self._feature_sets:
            path = self.store / self.layout.feature_info_key(name)
            if not path.exists():
                raise FileNotFoundError(
                    f"no '{name}' features in {self.root}: run `unitaf-data extract-features "
                    f"{self.root} --features {name}`")
            info = FeatureSetInfo.from_dict(read_json_file(path), str(path))
            if info.name != name:
                raise RecordError(f"{path}: names the set {info.name!r}, not {name!r}")
            self._feature_sets[name] = info
        return self._feature_sets[name]

    def feature_sets(self) -> dict[str, FeatureSetInfo]:
        return {name: self.feature_set(name) for name in self.feature_set_names()}

    def manifest(self) -> list[dict[str, Any]]:
        """One row per clip (key, split, shard, speaker, duration, text, ...), checked."""
        return _table_rows(self.location(self.layout.MANIFEST_KEY),
                           {"key": str, "split": str, "shard": str, "speaker": str,
                            "duration": float, "text": str, "emotion": str})

    def rejected(self) -> list[dict[str, Any]]:
        return _table_rows(self.location(self.layout.REJECTED_KEY),
                           {"what": str, "where": str, "reason": str, "detail": str})

    def check_sidecars(self, feature_sets: Iterable[str], splits: Iterable[str]) -> None:
        """Every main shard of `splits` has a sidecar of each set with the same keys and
        count (from the records, and the files' sizes): a mismatch is found here, before
        training starts, not in the middle of it."""
        problems = []
        for name in feature_sets:
            info = self.feature_set(name)
            for split in splits:
                for shard in self.shards(split):
                    problems += _sidecar_problems(self, name, info, shard)
        if problems:
            raise ValueError("sidecar shards do not match their main shards: "
                             + "; ".join(problems[:5])
                             + f"{' ...' if len(problems) > 5 else ''} (re-extract with "
                             f"`unitaf-data extract-features {self.root} --features SET "
                             "--overwrite`)")

    # --- samples ---------------------------------------------------------------------------

    def samples(self, shards: Iterable[ShardRef], sidecars: dict[str, Iterable[str]] | None
                = None, skips: Skips | None = None) -> Iterator[Sample]:
        """Samples of `shards` in order, each with the fields asked of each sidecar set
        (`{set: [field, ...]}`). Bad data raises ShardError, or with `skips` is counted and
        skipped (a shard whose file checks fail is skipped whole)."""
        wanted = {name: list(fields) for name, fields in (sidecars or {}).items()}
        for shard in shards:
            try:
                yield from self._shard_samples(shard, wanted, skips)
            except ShardError as error:
                if skips is None:
                    raise
                skips.add(error)

    def sample(self, key: str) -> Sample:
        """One clip by key (through the manifest's shard of it)."""
        row = next((r for r in self.manifest() if r["key"] == key), None)
        if row is None:
            raise KeyError(f"no clip {key!r} in {self.root}")
        shard = ShardRef.parse(f"{row['split']}/{row['shard']}")
        if shard.id not in self.info.shards:
            raise RecordError(f"manifest row {key!r} names an undeclared shard {shard.id}")
        found = next((s for s in self.samples([shard]) if s.key == key), None)
        if found is None:
            raise KeyError(f"clip {key!r} is not in {shard.id}")
        return found

    def _shard_samples(self, shard: ShardRef, wanted: dict[str, list[str]],
                       skips: Skips | None) -> Iterator[Sample]:
        with ExitStack() as files:
            main = self._tar(files, self.layout.shard_relative(shard), shard.id,
                             set(MAIN_FIELDS), self.info.shards[shard.id])
            streams = [self._sidecar_stream(files, name, shard) for name in wanted]
            for joined in _lockstep(main, streams, shard.id):
                try:
                    yield self._decode(shard.id, joined, wanted)
                except ShardError as error:
                    if skips is None:
                        raise
                    skips.add(error)

    def _tar(self, files: ExitStack, relative: str, shard_id: str, fields: set[str],
             record: ShardInfo) -> Iterator[tuple[str, dict[str, bytes]]]:
        """The samples of one tar, after its size and sha256 were checked."""
        handle = files.enter_context(verified_stream(self.location(relative), record,
                                                     shard_id))
        return stream_samples(handle, shard_id, fields, record)

    def _sidecar_stream(self, files: ExitStack, name: str, shard: ShardRef):
        info = self.feature_set(name)
        record = info.shards.get(shard.id)
        if record is None:
            raise ShardError(shard.id, f"no '{name}' sidecar for this shard")
        return self._tar(files, self.layout.sidecar_relative(name, shard),
                         f"features/{name}/{shard.id}", set(info.fields) | {REFUSED_FIELD},
                         record)

    def _decode(self, shard: str, joined: list[tuple[str, dict[str, bytes]]],
                wanted: dict[str, list[str]]) -> Sample:
        key, members = joined[0]
        if set(members) != set(MAIN_FIELDS):
            raise ShardError(shard, "sample lacks a field", key,
                             detail=f"has {sorted(members)}, needs {list(MAIN_FIELDS)}")
        meta = decode_record(ClipMeta.from_dict, decode_json(members["json"], shard, key),
                             shard, key, "json")
        self._check_meta(meta, shard, key)
        face = decode_array(members["face.npy"], FieldSpec(
            "float32", ("T", len(self.info.channels))), shard, key, "face.npy")
        if len(face) != meta.num_frames:
            raise ShardError(shard, "face length differs from num_frames", key, "face.npy",
                             f"{len(face)} != {meta.num_frames}")
        if not members["flac"].startswith(b"fLaC"):
            raise ShardError(shard, "audio is not FLAC", key, "flac")
        sample = Sample(key, shard, meta, face, members["flac"])
        for (name, fields), (_, side) in zip(wanted.items(), joined[1:], strict=True):
            self._add_features(sample, name, fields, side)
        return sample

    def _check_meta(self, meta: ClipMeta, shard: str, key: str) -> None:
        info = self.info
        problems = [
            f"key {meta.key!r}" if meta.key != key else "",
            f"split {meta.split!r}" if meta.split != shard.split("/")[0] else "",
            f"fps {meta.fps}" if meta.fps != info.fps else "",
            f"sample_rate {meta.sample_rate}" if meta.sample_rate != info.sample_rate else "",
            f"face_type {meta.face_type!r}" if meta.face_type != info.face_type else "",
        ]
        if any(problems):
            raise ShardError(shard, "clip json disagrees with the dataset", key, "json",
                             ", ".join(p for p in problems if p))

    def _add_features(self, sample: Sample, name: str, fields: list[str],
                      members: dict[str, bytes]) -> None:
        info = self.feature_set(name)
        shard = f"features/{name}/{sample.shard}"
        if REFUSED_FIELD in members:
            if len(members) != 1:
                raise ShardError(shard, "refused sample holds other fields", sample.key)
            sample.refused[name] = decode_text(members[REFUSED_FIELD], shard, sample.key,
                                               REFUSED_FIELD)
            return
        if set(members) != set(info.fields):
            raise ShardError(shard, "sidecar sample lacks a field", sample.key,
                             detail=f"has {sorted(members)}, declared {sorted(info.fields)}")
        arrays = {}
        for field_name in fields:
            spec = info.field_spec(field_name)
            rate = spec.rate or info.frame_rate
            frames = round(sample.meta.duration * rate) if rate and spec.time_varying else None
            array = decode_array(members[field_name], spec, shard, sample.key, field_name,
                                 frames)
            if spec.dtype.startswith("int") and info.dims and (
                    array.min(initial=0) < 0 or array.max(initial=0) >= info.dims):
                raise ShardError(shard, "code out of range", sample.key, field_name,
                                 f"codes must lie in [0, {info.dims})")
            arrays[field_name] = array
        sample.features[name] = arrays


def _lockstep(main, sidecars: list, shard: str) -> Iterator[list[tuple[str, dict]]]:
    """Main and sidecar samples side by side; the keys must agree at every step."""
    streams = [main, *sidecars]
    while True:
        items = [next(stream, None) for stream in streams]
        if all(item is None for item in items):
            return
        keys = [None if item is None else item[0] for item in items]
        if len(set(keys)) != 1:
            raise ShardError(shard, "sidecar keys out of step with the main shard",
                             keys[0], detail=f"keys {keys}")
        yield items


def _sidecar_problems(dataset: Dataset, name: str, info: FeatureSetInfo, shard: ShardRef
                      ) -> list[str]:
    main, side = dataset.info.shards[shard.id], info.shards.get(shard.id)
    if side is None:
        return [f"{name} has no sidecar for {shard.id}"]
    if side.samples != main.samples or side.keys_sha256 != main.keys_sha256:
        return [f"{name}/{shard.id} holds other keys than its main shard"]
    key = dataset.layout.sidecar_relative(name, shard)
    if dataset._fetch is None and (not dataset.store.exists(key)
                                   or dataset.store.size(key) != side.bytes):
        return [f"{name}/{shard.id}: file missing or of another size than recorded"]
    return []


def _table_rows(path: Location, columns: dict[str, type]) -> list[dict[str, Any]]:
    """A parquet table's rows, with the `columns` it must have checked by type."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(pa.BufferReader(path.read_bytes())).to_pylist()
    except (pa.ArrowException, OSError, ValueError) as error:  # a damaged file
        raise RecordError(f"{path}: unreadable table ({type(error).__name__}: {error})"
                          ) from None
    for i, row in enumerate(rows):
        for name, kind in columns.items():
            value = row.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise RecordError(f"{path}: row {i} column {name!r} is not a "
                                  f"{kind.__name__}")
    return rows


def json_text(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)


def write_json(path: Path | Location, data: Any) -> None:
    """A record written whole (locally: under a temporary name, renamed into place)."""
    Location.of(path).write_bytes(json_text(data).encode("utf-8"))


def shard_record(path: Path | ObjectRecord, keys: list[str]) -> ShardInfo:
    """The record of a shard just written: sample count, size, sha256, key digest."""
    if isinstance(path, ObjectRecord):
        return ShardInfo(len(keys), path.bytes, path.sha256, keys_digest(keys))
    return ShardInfo(len(keys), path.stat().st_size, sha256_of(path), keys_digest(keys))
