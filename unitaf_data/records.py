"""The kit every record reader uses to check what it parsed from a file: exactly the keys
expected, values of the expected type (a bool is never a number), times in seconds and
positive numbers; `RecordError` names the key that failed. `unitaf_data.schema` (the
dataset's records) and `unitaf_model.run` (a run's records) build on it. Writing a file
whole (`written_whole`: a temporary name, renamed once complete, removed on failure) is
here too, below every writer."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


def tool_version() -> str:
    """The installed unitaf version, recorded in everything the toolkit writes."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("unitaf")
    except PackageNotFoundError:
        return "0+unknown"


@contextlib.contextmanager
def written_whole(path: Path) -> Iterator[Path]:
    """The temporary path to write `path` under, renamed into place once the block ends; a
    failed write (a full disk) removes the temporary file and is an OSError naming `path`
    (the error of a bare `write` names no file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise OSError(error.errno, error.strerror, str(path)) from None
    tmp.replace(path)


class RecordError(ValueError):
    """A record on disk that this version cannot read exactly: the message names the key."""


def record_keys(data: Any, what: str, required: set[str], optional: set[str] = frozenset()
                ) -> dict[str, Any]:
    """`data` as a dict with exactly the `required` keys plus any of the `optional` ones."""
    if not isinstance(data, dict):
        raise RecordError(f"{what}: expected an object, got {type(data).__name__}")
    unknown = sorted(set(data) - required - set(optional))
    if unknown:
        raise RecordError(f"{what}: unknown key(s) {', '.join(map(str, unknown))}")
    missing = sorted(required - set(data))
    if missing:
        raise RecordError(f"{what}: missing key(s) {', '.join(missing)}")
    return data


def typed(value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    """`value` when it is of `kind` (an int is a float too; a bool is never a number)."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > 2**1023:  # beyond what a float holds
            raise RecordError(f"{what}: {value} is too large")
        return float(value)
    if isinstance(value, bool) and bool not in kinds:
        raise RecordError(f"{what}: expected {_names(kinds)}, got a boolean")
    if not isinstance(value, kinds):
        raise RecordError(f"{what}: expected {_names(kinds)}, got {type(value).__name__}")
    return value


def _names(kinds: tuple[type, ...]) -> str:
    return " or ".join("null" if k is type(None) else k.__name__ for k in kinds)


def seconds(value: Any, what: str) -> float:
    """`value` as a finite, non-negative time in seconds."""
    number = typed(value, float, what)
    if not np.isfinite(number) or number < 0:
        raise RecordError(f"{what}: {number} is not a time in seconds")
    return number


def positive(value: Any, what: str, kind: type = float) -> Any:
    """`value` as a finite number of `kind` above zero."""
    number = typed(value, kind, what)
    if not np.isfinite(number) or number <= 0:
        raise RecordError(f"{what}: {number} must be positive")
    return number
