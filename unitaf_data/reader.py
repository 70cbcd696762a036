"""The one safe reader of shards: every member of every tar is checked before it is used.

A shard may come from anywhere (a Hub download, a folder someone sent), so nothing in it is
trusted. The file is opened here, by path (or, for a dataset in object storage, as a file
object of the storage layer, streamed once into a spooled temporary file while hashed),
never handed to a library that reads a string as a URL (webdataset expands `::`, braces and
`pipe:` into shell commands); its sha256, size and
sample count must match what the dataset recorded when it was written, so a truncated or
altered tar is refused before any sample is used. Then, member by member: only regular
files, named `{key}.{field}` with a key of letters, digits, `_` and `-` and a field from an
allow-list, under a size cap, each key's members together and each key once; a missing
end-of-archive marker is an error (CPython's tarfile treats a damaged header as the end of
the archive). Arrays are `.npy` without pickle, their dtype, rank, width and finiteness
checked against the declared fields before they are decoded.

Anything wrong raises one error type, `ShardError`, naming the shard, the key and the field.
Readers that stream data can pass a `Skips` counter instead: a bad sample is then skipped
and counted by reason (a bad shard is skipped whole).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import tarfile
import tempfile
import tokenize
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from unitaf_data.schema import FieldSpec, RecordError, ShardInfo

KEY = re.compile(r"[A-Za-z0-9_-]{1,200}")
MEMBER_CAP_BYTES = {"json": 4 << 20, "rejected.txt": 64 << 10}
ARRAY_CAP_BYTES = 1 << 30
FLAC_CAP_BYTES = 256 << 20
_NPY_MAGIC = b"\x93NUMPY"
_NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}


class ShardError(ValueError):
    """Bad data in a shard: which shard, which sample key and which field, and why."""

    def __init__(self, shard: str, reason: str, key: str | None = None,
                 field_name: str | None = None, detail: str = "") -> None:
        where = shard + (f", key {key}" if key else "") + (
            f", field {field_name}" if field_name else "")
        super().__init__(f"{where}: {reason}" + (f" ({detail})" if detail else ""))
        self.shard, self.key, self.field, self.reason = shard, key, field_name, reason
        self.detail = detail


@dataclass
class Skips:
    """Counts of what a streaming reader skipped instead of stopping, by reason."""

    counts: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def add(self, error: ShardError) -> None:
        self.counts[error.reason] += 1
        if len(self.examples) < 10:
            self.examples.append(str(error))

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def sha256_of(path: Path) -> str:
    """sha256 of a (possibly large) file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_verified: dict[tuple[str, int, int], str] = {}


def verify_file(path: Path, expected: ShardInfo, shard: str) -> None:
    """The file's size and sha256 equal what was recorded (hashed once per process for an
    unchanged file)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise ShardError(shard, "missing shard file", detail=str(path)) from None
    if stat.st_size != expected.bytes:
        raise ShardError(shard, "size differs from the record",
                         detail=f"{stat.st_size} bytes, recorded {expected.bytes}")
    token = (str(path), stat.st_size, stat.st_mtime_ns)
    if token not in _verified:
        _verified[token] = sha256_of(path)
    if _verified[token] != expected.sha256:
        raise ShardError(shard, "checksum mismatch", detail="sha256 differs from the record")


def tar_samples(path: Path, shard: str, fields: set[str], expected: ShardInfo
                ) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {field: bytes}) of each sample of one local tar, in order, after the file
    checks; `fields`: the member fields allowed (a sample holds a subset of them)."""
    verify_file(path, expected, shard)
    with open(path, "rb") as handle:
        yield from stream_samples(handle, shard, fields, expected)


@contextmanager
def verified_stream(location, expected: ShardInfo, shard: str) -> Iterator[IO[bytes]]:
    """A readable file object of a shard whose size and sha256 equal the record, from a
    storage `Location` (`unitaf_data.storage`): a local file is hashed in place (once per
    process while unchanged); a remote object is streamed once into a spooled temporary
    file (memory up to 64 MiB, then local disk) while it is hashed, so nothing unchecked
    is parsed and no dataset is downloaded whole."""
    storage = location.storage
    if storage.is_local:
        path = storage.local_path(location.key)
        verify_file(path, expected, shard)
        with open(path, "rb") as handle:
            yield handle
        return
    digest, size = hashlib.sha256(), 0
    with tempfile.SpooledTemporaryFile(max_size=64 << 20) as spool:
        try:
            source = location.open()
        except FileNotFoundError:
            raise ShardError(shard, "missing shard file", detail=str(location)) from None
        with source:
            for block in iter(lambda: source.read(1 << 20), b""):
                size += len(block)
                if size > expected.bytes:
                    raise ShardError(shard, "size differs from the record",
                                     detail=f"more than the {expected.bytes} bytes recorded")
                digest.update(block)
                spool.write(block)
        if size != expected.bytes:
            raise ShardError(shard, "size differs from the record",
                             detail=f"{size} bytes, recorded {expected.bytes}")
        if digest.hexdigest() != expected.sha256:
            raise ShardError(shard, "checksum mismatch", detail="sha256 differs from the record")
        spool.seek(0)
        yield spool


def stream_samples(handle: IO[bytes], shard: str, fields: set[str], expected: ShardInfo
                   ) -> Iterator[tuple[str, dict[str, bytes]]]:
    """The samples of a tar read from a seekable file object whose size and sha256 were
    checked (`verify_file`, `verified_stream`)."""
    count = 0
    with _open_tar(handle, shard) as archive:
        for key, members in _grouped(archive, shard, fields):
            count += 1
            yield key, members
        _check_end(handle, archive.offset, shard)
    if count != expected.samples:
        raise ShardError(shard, "sample count differs from the record",
                         detail=f"{count} samples, recorded {expected.samples}")


def _open_tar(handle, shard: str) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=handle, mode="r:")  # plain tar: no transparent decompression
    except tarfile.TarError as error:
        raise ShardError(shard, "not a tar file", detail=str(error)) from None


def _grouped(archive: tarfile.TarFile, shard: str, fields: set[str]
             ) -> Iterator[tuple[str, dict[str, bytes]]]:
    seen: set[str] = set()
    key, members = None, {}
    for info in _members(archive, shard):
        member_key, member_field = _split_name(info.name, shard, fields)
        if member_key != key:
            if key is not None:
                yield key, members
            if member_key in seen:
                raise ShardError(shard, "key appears twice", member_key)
            seen.add(member_key)
            key, members = member_key, {}
        if member_field in members:
            raise ShardError(shard, "field appears twice", key, member_field)
        cap = _cap(member_field)
        if info.size > cap:
            raise ShardError(shard, "member too large", key, member_field,
                             f"{info.size} bytes > {cap}")
        try:
            members[member_field] = archive.extractfile(info).read()
        except tarfile.TarError as error:  # the member's data ends early
            raise ShardError(shard, "damaged or truncated tar", key, member_field,
                             str(error)) from None
    if key is not None:
        yield key, members


def _members(archive: tarfile.TarFile, shard: str) -> Iterator[tarfile.TarInfo]:
    while True:
        try:
            info = archive.next()
        except tarfile.TarError as error:
            raise ShardError(shard, "damaged tar", detail=str(error)) from None
        if info is None:
            return
        if not info.isreg():
            raise ShardError(shard, "member is not a regular file", detail=repr(info.name))
        yield info


def _split_name(name: str, shard: str, fields: set[str]) -> tuple[str, str]:
    key, dot, member_field = name.partition(".")
    if not dot or not KEY.fullmatch(key) or member_field not in fields:
        raise ShardError(shard, "unexpected member name", detail=repr(name[:120]))
    return key, member_field


def _cap(member_field: str) -> int:
    if member_field in MEMBER_CAP_BYTES:
        return MEMBER_CAP_BYTES[member_field]
    return FLAC_CAP_BYTES if member_field == "flac" else ARRAY_CAP_BYTES


def _check_end(handle, offset: int, shard: str) -> None:
    """After the last member: only zero blocks, at least the two of the end marker."""
    handle.seek(offset)
    rest = handle.read()
    if len(rest) < 1024 or rest.count(0) != len(rest):
        raise ShardError(shard, "damaged or truncated tar",
                         detail=f"no end-of-archive marker after byte {offset}")


def decode_array(data: bytes, spec: FieldSpec, shard: str, key: str, field_name: str,
                 frames: int | None = None) -> np.ndarray:
    """An `.npy` member as declared by `spec` (dtype, rank, sizes; `T` within one frame of
    `frames` when given), finite, never unpickled."""
    def bad(reason: str, detail: str = "") -> ShardError:
        return ShardError(shard, reason, key, field_name, detail)

    if not data.startswith(_NPY_MAGIC):
        raise bad("not an .npy array")
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        read_header = _NPY_HEADER_READERS.get(version)
        if read_header is None:
            raise ValueError(f"format version {version}")
        shape, fortran, dtype = read_header(stream)
    except (ValueError, SyntaxError, tokenize.TokenError, RecursionError) as error:
        # numpy parses the header's dict literal: a damaged one fails in any of these
        raise bad("unreadable .npy header", str(error)) from None
    if dtype.hasobject or dtype.kind not in "iuf" or dtype.byteorder == ">":
        raise bad("array dtype not allowed", str(dtype))
    if dtype.name != spec.dtype:
        raise bad("array dtype differs from the declared one", f"{dtype.name} != {spec.dtype}")
    _check_shape(shape, spec, frames, bad)
    payload = data[stream.tell():]
    if len(payload) != math.prod(shape) * dtype.itemsize:  # math.prod: no int64 overflow
        raise bad("array data does not match its header")
    array = np.frombuffer(payload, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    if dtype.kind == "f" and not np.isfinite(array).all():
        raise bad("array has NaN or inf")
    return np.ascontiguousarray(array)


def _check_shape(shape: tuple[int, ...], spec: FieldSpec, frames: int | None, bad) -> None:
    if len(shape) != len(spec.shape):
        raise bad("array rank differs from the declared one",
                  f"shape {shape}, declared {list(spec.shape)}")
    for size, declared in zip(shape, spec.shape, strict=True):
        if declared == "T":
            if size < 1 or (frames is not None and abs(size - frames) > 1):
                raise bad("array length does not match the clip",
                          f"{size} frames, expected {frames}")
        elif size != declared:
            raise bad("array shape differs from the declared one",
                      f"shape {shape}, declared {list(spec.shape)}")


def decode_json(data: bytes, shard: str, key: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ShardError(shard, "unreadable json", key, "json", str(error)[:200]) from None


def decode_record(parse, data: Any, shard: str, key: str, field_name: str):
    """A typed record (`ClipMeta.from_dict`...) from decoded JSON, as a ShardError."""
    try:
        return parse(data)
    except RecordError as error:
        raise ShardError(shard, "invalid record", key, field_name, str(error)) from None


def decode_text(data: bytes, shard: str, key: str, field_name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ShardError(shard, "text is not utf-8", key, field_name) from None
