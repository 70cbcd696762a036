"""Folders the toolkit made, and the one place that removes or replaces anything on a user's
path.

When the toolkit creates a dataset, a feature set, a run, an eval report folder, an outputs
folder or a demo corpus, it writes a marker into it first, `.unitaf-folder.json`:
`{"kind": ..., "marker_version": 1, "tool_version": ...}`. A folder is the toolkit's only by
that marker: nothing else (a `config.json`, a folder name) makes it so. Removing a folder
(`--overwrite`, or cleaning up after a failed start) is done here and only for a folder that
is absent, empty, or marked with the expected kind; anything else (someone's model folder,
an unrelated folder, a symbolic link) is refused with a `ForeignFolder` error naming the
folder and what is in it, and is left as it was.

Folders written before markers existed are recognised by their own records: a dataset by
a valid `unitaf.json` (or the build's `.build/settings.json`), a feature set by a valid
`feature.json` (or the settings its extraction recorded, or fitted units), a run by a
`model.json` holding a run record next to its `config.json`, a report by its `eval.json`,
a demo corpus by its `corpus.json`. An outputs folder of
`animate` / `infer` from before has no such record and is treated as foreign.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

MARKER = ".unitaf-folder.json"
MARKER_VERSION = 1
KINDS = ("dataset", "feature_set", "run", "report", "outputs", "demo_corpus")
SHOWN = 5  # entries a refusal lists


class ForeignFolder(FileExistsError):
    """A folder the toolkit did not make (or made as something else), which it will not
    delete or write over; the message names it and what it holds."""


def _json_object(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _valid_record(path: Path, parse: Callable[[dict], object]) -> bool:
    from unitaf_data.records import RecordError

    data = _json_object(path)
    if data is None:
        return False
    try:
        parse(data)
    except RecordError:
        return False
    return True


def _legacy_dataset(folder: Path) -> bool:
    from unitaf_data.schema import DatasetInfo

    return _valid_record(folder / "unitaf.json", DatasetInfo.from_dict) or \
        _json_object(folder / ".build" / "settings.json") is not None


def _legacy_feature_set(folder: Path) -> bool:
    from unitaf_data.schema import FeatureSetInfo

    begun = folder.parent / ".build" / folder.name / "settings.json"  # extraction's record
    return _valid_record(folder / "feature.json", FeatureSetInfo.from_dict) or (
        _json_object(folder / "fit.json") is not None and (folder / "centroids.npy").is_file()
    ) or _json_object(begun) is not None


RUN_RECORD_KEYS = {"stage", "model", "inputs", "fps", "face_fps", "speakers", "front_end",
                   "dataset"}


def _legacy_run(folder: Path) -> bool:
    record = _json_object(folder / "model.json")
    return record is not None and set(record) >= RUN_RECORD_KEYS and \
        _json_object(folder / "config.json") is not None


def _legacy_report(folder: Path) -> bool:
    report = _json_object(folder / "eval.json")
    return report is not None and {"split", "systems"} <= set(report)


def _legacy_demo_corpus(folder: Path) -> bool:
    index = _json_object(folder / "corpus.json")
    return index is not None and "recordings" in index


_LEGACY: dict[str, Callable[[Path], bool]] = {
    "dataset": _legacy_dataset, "feature_set": _legacy_feature_set, "run": _legacy_run,
    "report": _legacy_report, "demo_corpus": _legacy_demo_corpus}


def marker_kind(folder: Path) -> str | None:
    """The kind the toolkit marked `folder` with (or that its own records prove, for a
    folder from before markers); None for anything else."""
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        return None
    marker = _json_object(folder / MARKER)
    if marker is not None and marker.get("kind") in KINDS:
        return marker["kind"]
    return next((kind for kind, proof in _LEGACY.items() if proof(folder)), None)


def describe(folder: Path) -> str:
    """What is at `folder`, in a few words: a link's target, a file, or the entries held."""
    folder = Path(folder)
    if folder.is_symlink():
        return f"is a symbolic link to {folder.readlink()}"
    if not folder.is_dir():
        return "is a file" if folder.exists() else "does not exist"
    entries = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    shown = ", ".join(entries[:SHOWN]) + (f" and {len(entries) - SHOWN} more"
                                          if len(entries) > SHOWN else "")
    return f"holds {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}: {shown}" \
        if entries else "is empty"


def is_empty(folder: Path) -> bool:
    return folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir())


def check_owned(folder: Path, kind: str, advice: str = "") -> None:
    """Refuse (ForeignFolder) unless `folder` is absent, empty, or the toolkit's `kind`."""
    if kind not in KINDS:
        raise ValueError(f"unknown folder kind {kind!r}")
    folder = Path(folder)
    if not folder.exists() and not folder.is_symlink():
        return
    if is_empty(folder):
        return
    found = marker_kind(folder)
    if found == kind:
        return
    what = f"it is a unitaf {found.replace('_', ' ')}" if found else \
        f"not made by unitaf: no {MARKER}"
    raise ForeignFolder(f"{folder} is not a unitaf {kind.replace('_', ' ')} ({what}); it "
                        f"{describe(folder)}: left as it is{f' ({advice})' if advice else ''}")


def claim(folder: Path, kind: str, advice: str = "") -> Path:
    """`folder` made ready to write the toolkit's `kind` into: created (with its marker)
    when absent or empty; kept when it is already the toolkit's `kind`; refused otherwise."""
    check_owned(folder, kind, advice)
    folder = Path(folder)
    if folder.is_dir() and any(folder.iterdir()):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    from unitaf_data.records import tool_version, written_whole

    with written_whole(folder / MARKER) as tmp:  # a full disk: an OSError naming the marker
        tmp.write_text(json.dumps({"kind": kind, "marker_version": MARKER_VERSION,
                                   "tool_version": tool_version()}, sort_keys=True))
    return folder


def remove(folder: Path, kind: str, advice: str = "", keep_folder: bool = False) -> None:
    """Delete `folder` (or only what it holds, with `keep_folder`) when it is the toolkit's
    `kind` or empty; refuse (ForeignFolder) anything else, deleting nothing."""
    check_owned(folder, kind, advice)
    folder = Path(folder)
    if not folder.exists():
        return
    if not keep_folder:
        shutil.rmtree(folder)
        return
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def claim_outputs(folder: Path, names: Iterable[str], overwrite: bool = False) -> Path:
    """An outputs folder (`animate`, `infer`) about to receive the files `names`: a new or
    empty folder is claimed; in an outputs folder the toolkit made, files of those names
    are replaced only with `overwrite`; any other folder is refused (ForeignFolder)."""
    advice = "pass a new or empty --out"
    claim(folder, "outputs", advice)
    folder = Path(folder)
    clashes = sorted(name for name in set(names) if (folder / name).exists()
                     or (folder / name).is_symlink())
    links = [name for name in clashes if (folder / name).is_symlink()]
    if links:  # writing through a link would change a file elsewhere
        raise ForeignFolder(f"{folder / links[0]} is a symbolic link: remove it or {advice}")
    if clashes and not overwrite:
        shown = ", ".join(clashes[:SHOWN]) + (" ..." if len(clashes) > SHOWN else "")
        raise ForeignFolder(f"{folder} already holds {shown}: pass --overwrite to replace "
                            f"them, or {advice}")
    return folder
