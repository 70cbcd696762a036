"""The one storage layer: a local folder or an object-store prefix (`s3://`, `gs://`), reached
through fsspec, holding objects under validated keys.

Used only by the dataset contract (`unitaf_data.dataset`, which re-exports what others need)
and its resolvers (corpus sources, the Hub). A `Storage` is made from the URL or path the
user typed, and only from it: the protocol comes from that string. Everything below the root
is a key (`data/train/train-000000.tar`): keys are checked (relative, `/`-separated segments
of letters, digits, `.`, `_`, `-`, `=`, `+`, never only dots) and joined, never parsed as URLs, so a
name read from a record cannot reach outside the root or change the protocol.

Writes are whole objects: on a local disk written under a temporary name and renamed; on an
object store (no rename) staged in a local temporary file, hashed, then uploaded in one
`put` (multipart above the client's threshold), so an object is either absent or complete.
Completion markers are written after the object they mark, by the caller.

Credentials come from the client's own chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`,
`AWS_PROFILE`, `AWS_ENDPOINT_URL` for S3-compatible stores, `AWS_REGION`; Google's
application-default credentials for `gs://`). This module never reads, prints, logs or
stores them: a `Storage` holds only the user's URL, so pickling one (to a Ray worker) sends
no secret; each worker finds the credentials in its own environment.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO, Any

PROTOCOLS = {"s3": "s3fs", "gs": "gcsfs"}  # protocol → the optional package that serves it
_URL = re.compile(r"(?P<protocol>[a-z0-9]+)://(?P<bucket>[a-z0-9][a-z0-9._-]{1,220})"
                  r"(?P<prefix>(/[A-Za-z0-9._=+-]+)*)/?")
_SEGMENT = re.compile(r"[A-Za-z0-9._=+-]{1,255}")
_BLOCK = 1 << 20
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 120
ATTEMPTS = 3


class StorageError(OSError):
    """A storage location that cannot be used: the message names the location and the cause,
    never a credential."""


def is_url(reference: str | Path) -> bool:
    """Whether the user's reference names an object store (`s3://...`, `gs://...`)."""
    return isinstance(reference, str) and "://" in reference


def check_key(key: str) -> str:
    """A relative key of safe segments; anything else (absolute, `..`, a scheme, empty
    segments, odd characters) is refused."""
    if not isinstance(key, str) or not key or len(key) > 1024:
        raise StorageError(f"not a storage key: {key!r}")
    for segment in key.split("/"):
        if not _SEGMENT.fullmatch(segment) or set(segment) == {"."}:
            raise StorageError(f"not a storage key: {key[:200]!r} (segment {segment[:80]!r})")
    return key


@dataclass(frozen=True)
class ObjectRecord:
    """Size and sha256 of an object just written."""

    bytes: int
    sha256: str


@dataclass(frozen=True)
class Storage:
    """A root: a local folder (`root` is its absolute path) or `protocol://bucket/prefix`."""

    root: str

    @staticmethod
    def of(reference: str | Path) -> Storage:
        """The user's URL or path (a local path is made absolute)."""
        if not is_url(reference):
            return Storage(str(Path(reference).expanduser().absolute()))
        match = _URL.fullmatch(str(reference))
        if not match:
            raise StorageError(f"{reference!r} is not a storage URL like s3://bucket/prefix")
        if match["protocol"] not in PROTOCOLS:
            raise StorageError(f"{reference}: unsupported protocol {match['protocol']}:// "
                               f"(supported: {', '.join(p + '://' for p in PROTOCOLS)}, "
                               "or a local path)")
        return Storage(f"{match['protocol']}://{match['bucket']}{match['prefix']}")

    # --- where ----------------------------------------------------------------------------

    @property
    def protocol(self) -> str:
        return self.root.split("://", 1)[0] if "://" in self.root else "file"

    @property
    def is_local(self) -> bool:
        return self.protocol == "file"

    @property
    def bucket(self) -> str:
        return self.root.split("://", 1)[1].split("/", 1)[0]

    def __str__(self) -> str:
        return self.root

    def __truediv__(self, key: str) -> Location:
        return Location(self, check_key(key))

    def child(self, key: str) -> Storage:
        """The storage rooted at `key` below this one."""
        return Storage(self._path(key))

    def _path(self, key: str = "") -> str:
        """The filesystem path of `key` (the root itself for an empty key)."""
        if not key:
            return self.root if self.is_local else self.root.split("://", 1)[1]
        base = self._path()
        return f"{base.rstrip('/')}/{check_key(key)}"

    def local_path(self, key: str = "") -> Path:
        """The local file of `key` (local storage only)."""
        if not self.is_local:
            raise StorageError(f"{self.root} is not on a local disk")
        return Path(self._path(key))

    def url(self, key: str = "") -> str:
        """For messages: the location of `key` as the user would write it."""
        return self.root if not key else f"{self.root.rstrip('/')}/{check_key(key)}"

    @property
    def fs(self):
        return _filesystem(self.protocol, _client_environment())

    # --- reading --------------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        if self.is_local:
            return self.local_path(key).exists()
        return self._call(lambda: self.fs.exists(self._path(key)), key)

    def size(self, key: str) -> int:
        if self.is_local:
            return self.local_path(key).stat().st_size
        return int(self._call(lambda: self.fs.info(self._path(key))["size"], key))

    def open(self, key: str) -> IO[bytes]:
        """A binary file object of `key` for reading (FileNotFoundError when absent)."""
        if self.is_local:
            return open(self.local_path(key), "rb")
        return self._call(lambda: self.fs.open(self._path(key), "rb"), key)

    def read_bytes(self, key: str) -> bytes:
        with self.open(key) as handle:
            return handle.read()

    def read_text(self, key: str) -> str:
        return self.read_bytes(key).decode("utf-8")

    def list(self, prefix: str = "") -> list[str]:
        """Every object's key under `prefix` (recursively), sorted; [] when none."""
        if self.is_local:
            base = self.local_path()
            folder = self.local_path(prefix) if prefix else base
            if not folder.is_dir():
                return []
            return sorted(p.relative_to(base).as_posix() for p in folder.rglob("*")
                          if p.is_file())
        base = self._path().rstrip("/") + "/"
        found = self._call(lambda: self.fs.find(self._path(prefix) if prefix else base), prefix)
        return sorted(path[len(base):] for path in found if path.startswith(base))

    def is_empty(self) -> bool:
        if self.is_local:
            root = self.local_path()
            return not root.exists() or not any(root.iterdir())
        return not self.list()

    @contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        """`key` as a local file for readers that need a path: the file itself on a local
        disk, else a download into a temporary folder removed afterwards."""
        if self.is_local:
            yield self.local_path(key)
            return
        with tempfile.TemporaryDirectory(prefix="unitaf-") as folder:
            target = Path(folder) / key.rsplit("/", 1)[-1]
            with self.open(key) as source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink, _BLOCK)
            yield target

    # --- writing --------------------------------------------------------------------------

    def write_object(self, key: str, fill: Callable[[IO[bytes]], Any]) -> ObjectRecord:
        """Write `key` whole from what `fill(handle)` writes; returns its size and sha256.
        Nothing appears at `key` unless `fill` returns."""
        if self.is_local:  # a temporary name renamed into place; a full disk names `key`
            from unitaf_data.records import written_whole

            target = self.local_path(key)
            try:
                with written_whole(target) as staged:
                    with open(staged, "wb") as handle:
                        fill(handle)
                    record = _record_of(staged)
            finally:
                target.with_name(target.name + ".tmp").unlink(missing_ok=True)
            return record
        with tempfile.TemporaryDirectory(prefix="unitaf-") as folder:
            staged = Path(folder) / "object"
            with open(staged, "wb") as handle:
                fill(handle)
            record = _record_of(staged)
            self._call(lambda: self.fs.put_file(str(staged), self._path(key)), key)
        return record

    def write_bytes(self, key: str, data: bytes) -> ObjectRecord:
        return self.write_object(key, lambda handle: handle.write(data))

    def write_text(self, key: str, text: str) -> ObjectRecord:
        return self.write_bytes(key, text.encode("utf-8"))

    def upload(self, key: str, source: Path) -> ObjectRecord:
        """Copy a local file to `key` whole."""
        def fill(handle: IO[bytes]) -> None:
            with open(source, "rb") as data:
                shutil.copyfileobj(data, handle, _BLOCK)

        return self.write_object(key, fill)

    def remove(self, prefix: str = "") -> None:
        """Delete `prefix` (one object or everything under it; the whole root when empty)."""
        if self.is_local:
            target = self.local_path(prefix) if prefix else self.local_path()
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
            return
        keys = self.list(prefix)
        if prefix and self.exists(prefix):
            keys.append(prefix)
        if keys:
            paths = [self._path(k) for k in sorted(set(keys))]
            self._call(lambda: self.fs.rm(paths), prefix)

    # --- access -----------------------------------------------------------------------------

    def check_access(self) -> None:
        """One request that fails now, with a clear StorageError, when the store cannot be
        reached, the credentials are refused, or the bucket does not exist."""
        if self.is_local:
            return
        fs = self.fs
        try:
            if self.protocol == "s3":
                fs.call_s3("head_bucket", Bucket=self.bucket)
            else:
                fs.info(self.bucket)
        except Exception as error:  # the client's own types, by store and version
            raise StorageError(self._explain(error, "")) from None

    def _call(self, action: Callable[[], Any], key: str) -> Any:
        try:
            return action()
        except FileNotFoundError:
            raise
        except Exception as error:
            raise StorageError(self._explain(error, key)) from None

    def _explain(self, error: Exception, key: str) -> str:
        where = self.url(key) if key else f"{self.protocol}://{self.bucket}"
        text = f"{type(error).__name__}: {error}"
        code = _error_code(error)
        if code in {"NoSuchBucket", "404"} or "NoSuchBucket" in text or (
                not key and isinstance(error, FileNotFoundError)):
            return f"{where}: the bucket {self.bucket!r} does not exist"
        if code in {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403",
                    "ExpiredToken", "InvalidToken"} or isinstance(error, PermissionError) \
                or "NoCredentials" in text or "credentials" in text.lower():
            return (f"{where}: access refused: check the credentials "
                    f"({_credential_sources(self.protocol)}); {_short(code or text)}")
        if "connect" in text.lower() or "endpoint" in text.lower() or "timeout" in \
                text.lower() or isinstance(error, ConnectionError | TimeoutError):
            return (f"{where}: the store cannot be reached at "
                    f"{os.environ.get('AWS_ENDPOINT_URL', 'its default endpoint')} "
                    f"({_short(text)})")
        return f"{where}: {_short(text)}"


def _error_code(error: Exception) -> str:
    for candidate in (error, error.__cause__, error.__context__):
        response = getattr(candidate, "response", None)
        if isinstance(response, dict):
            return str(response.get("Error", {}).get("Code", ""))
    return ""


def _short(text: str) -> str:
    return text.splitlines()[0][:300] if text else ""


def _credential_sources(protocol: str) -> str:
    if protocol == "s3":
        return ("AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE, AWS_ENDPOINT_URL, "
                "AWS_REGION")
    return "GOOGLE_APPLICATION_CREDENTIALS or gcloud application-default login"


def _record_of(path: Path) -> ObjectRecord:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return ObjectRecord(path.stat().st_size, digest.hexdigest())


_CLIENT_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID",
                     "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION",
                     "AWS_DEFAULT_REGION", "GOOGLE_APPLICATION_CREDENTIALS")


def _client_environment() -> str:
    """A digest of the variables the clients read: a changed endpoint or key gets a new
    client (the digest keeps no value in memory that could be shown)."""
    values = "\0".join(os.environ.get(name, "") for name in _CLIENT_VARIABLES)
    return hashlib.sha256(values.encode()).hexdigest()


@cache
def _filesystem(protocol: str, environment: str):
    """One fsspec filesystem per protocol, process and client environment (`environment`:
    its digest), configured with short connect timeouts and few retries (an unreachable
    store fails in seconds, not minutes); the credentials and endpoint come from the
    client's own chain."""
    import importlib

    package = PROTOCOLS[protocol]
    try:
        importlib.import_module(package)
    except ImportError:
        raise StorageError(f"{protocol}:// needs the {package} package: "
                           f"pip install 'unitaf[{protocol}]'") from None
    import fsspec

    if protocol == "s3":
        return fsspec.filesystem("s3", skip_instance_cache=True, config_kwargs={
            "connect_timeout": CONNECT_TIMEOUT_S, "read_timeout": READ_TIMEOUT_S,
            "retries": {"max_attempts": ATTEMPTS, "mode": "standard"}})
    return fsspec.filesystem(protocol, skip_instance_cache=True)


@dataclass(frozen=True)
class Location:
    """One object: a storage root and a checked key."""

    storage: Storage
    key: str

    @staticmethod
    def of(target: str | Path | Location) -> Location:
        """A Location as is; a local path as the file `name` of its folder's storage."""
        if isinstance(target, Location):
            return target
        path = Path(target).absolute()
        return Location(Storage(str(path.parent)), check_key(path.name))

    def __str__(self) -> str:
        return self.storage.url(self.key)

    def exists(self) -> bool:
        return self.storage.exists(self.key)

    def open(self) -> IO[bytes]:
        return self.storage.open(self.key)

    def read_bytes(self) -> bytes:
        return self.storage.read_bytes(self.key)

    def write_object(self, fill: Callable[[IO[bytes]], Any]) -> ObjectRecord:
        return self.storage.write_object(self.key, fill)

    def write_bytes(self, data: bytes) -> ObjectRecord:
        return self.storage.write_bytes(self.key, data)
