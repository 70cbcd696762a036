"""Datasets on the Hugging Face Hub: ids, the Hub's limits, the upload plan, push, pull, and
a Hub dataset opened at one commit whose shards are fetched one at a time.

Everything that comes back from the Hub is untrusted. A Hub dataset is read at one resolved
commit sha (never a branch that moves while a run reads it); its records are parsed
strictly, and every shard is fetched at that commit and read by the safe reader, which
checks the file's sha256 against the record. Before a push, the dataset is read whole by
the same reader and its file list checked against the Hub's limits; only the files the
records declare are uploaded (never the `.build/` work folders or temporary files).

The token is huggingface_hub's own (`HF_TOKEN`, or the login cache of `hf auth login`):
nothing here reads it beyond asking whether there is one, and nothing prints or writes it.
"""

from __future__ import annotations

import fnmatch
import glob
import math
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from unitaf_data import owned
from unitaf_data.dataset import Dataset, DatasetLayout, ShardRef, Storage, is_url
from unitaf_data.licences import LICENCE_FILE, feature_terms, source_terms
from unitaf_data.owned import MARKER
from unitaf_data.reader import verify_file
from unitaf_data.schema import ShardInfo
from unitaf_data.verify import VerifyReport, verify

_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")
_COMMIT = re.compile(r"[0-9a-f]{40}")
# The small files at the top of a feature set's folder (feature.json; for `units`, the
# centroids and their fit) that a push uploads.
SET_FILE_SUFFIXES = (".json", ".npy")
# What opening a Hub dataset downloads: these records by their exact names, and the files of
# the repository's list that are a feature set's records (`DatasetLayout.is_set_record`);
# shards come one at a time, as the records declare them. Nothing else is ever fetched.
RECORD_FILES = ("README.md", LICENCE_FILE, "unitaf.json", "manifest.parquet",
                "rejected.parquet")
# What a push may delete in the repository (stale shards of an earlier push): only files
# named as the toolkit names shards, never anything else someone keeps there.
_SHARD_NAME = "*-[0-9][0-9][0-9][0-9][0-9][0-9].tar"
SHARD_PATTERNS = (f"data/{_SHARD_NAME}", f"features/{_SHARD_NAME}")


def is_hub_id(reference: str) -> bool:
    """`owner/name`: the shape of a Hugging Face Hub repository id."""
    return bool(_HUB_ID.fullmatch(reference)) and ".." not in reference


class HubError(FileNotFoundError):
    """A Hub repository, revision or file that could not be reached (offline, unknown,
    gated, or refused by the server); the message says which and why."""


def _hub_errors() -> tuple[type[BaseException], ...]:
    """What huggingface_hub raises for a repository, revision or file it cannot reach."""
    from huggingface_hub import errors

    # errors.HTTPError: the base error of the HTTP client huggingface_hub uses (connection
    # failures, timeouts), whichever client that is
    return (errors.HfHubHTTPError, errors.EntryNotFoundError, errors.OfflineModeIsEnabled,
            errors.HFValidationError, errors.HTTPError)


def hub_call(what: str, call, *args: Any, **kwargs: Any) -> Any:
    """`call(*args, **kwargs)` with the Hub's errors as one HubError saying `what` failed."""
    try:
        return call(*args, **kwargs)
    except _hub_errors() as error:
        raise HubError(f"could not {what} on the Hugging Face Hub "
                       f"({type(error).__name__}: {error})") from None


def local_or_hub(reference: str, allow_patterns: list[str] | None = None, hint: str = "",
                 repo_type: str = "dataset") -> Path:
    """`reference` as a local path when it exists; otherwise a Hub repository id fetched with
    `huggingface_hub.snapshot_download` (only `allow_patterns` when given; from the local
    cache when offline). Offline without a cached copy, or for an unknown or gated
    repository, a FileNotFoundError says so (`hint`: what to do)."""
    path = Path(reference)
    if path.exists():
        return path
    if not is_hub_id(reference):
        raise FileNotFoundError(f"{reference} is neither a local path nor a Hub {repo_type} id"
                                f"{hint}")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(reference, repo_type=repo_type,
                                      allow_patterns=allow_patterns))
    except _hub_errors() as error:
        raise HubError(f"could not download {reference} from the Hugging Face Hub "
                       f"({type(error).__name__}: {error}){hint}") from None


# --- the Hub's limits and the upload plan -------------------------------------------------


@dataclass(frozen=True)
class HubLimits:
    """Hub repository limits (hub-docs storage-limits.md; datasets upload guide)."""

    files_per_repo: int = 100_000  # recommended maximum
    entries_per_folder: int = 10_000  # "cannot exceed 10k files per folder"
    file_bytes: int = 200 * 10**9  # max_file_size_gb 200 (the hard limit is 500 GB)
    files_per_commit: int = 256  # upload_folder's first commit size (it adapts, 20…1000)


@dataclass(frozen=True)
class PlannedFile:
    path: str  # relative to the dataset folder, as in the repository
    bytes: int


@dataclass(frozen=True)
class UploadPlan:
    """What a push uploads: the files the records declare, and the patterns that select
    exactly them in `upload_folder`; the card is committed last, from the records."""

    root: Path
    files: tuple[PlannedFile, ...]
    feature_sets: tuple[str, ...]
    allow_patterns: tuple[str, ...]
    ignore_patterns: tuple[str, ...]
    delete_patterns: tuple[str, ...]  # remote shards (by the tool's shard names) the plan lacks

    @property
    def total_bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def folders(self) -> dict[str, tuple[int, int]]:
        """(files, bytes) per folder, in path order."""
        table: dict[str, tuple[int, int]] = {}
        for item in sorted(self.files, key=lambda f: f.path):
            folder = str(PurePosixPath(item.path).parent)
            count, size = table.get(folder, (0, 0))
            table[folder] = (count + 1, size + item.bytes)
        return table

    def commits(self, limits: HubLimits) -> int:
        """About how many commits the upload makes (upload_folder splits large folders;
        one more for the card)."""
        return math.ceil(len(self.files) / limits.files_per_commit) + 1


class PushRefused(ValueError):
    """A dataset that must not be pushed as it is: the message says why and what to do."""


def select_feature_sets(dataset: Dataset, names: list[str] | None) -> list[str]:
    """The complete feature sets `names` (None or ["all"]: every complete set), checked."""
    present = dataset.feature_set_names()
    if names is None or names == ["all"]:
        return present
    unknown = sorted(set(names) - set(present))
    if unknown:
        raise ValueError(f"no complete feature set {', '.join(unknown)} in {dataset.origin}; "
                         f"it has {', '.join(present) or 'none'}")
    return [name for name in present if name in names]


def dataset_files(dataset: Dataset, feature_sets: list[str]) -> list[str]:
    """The files of `dataset` with `feature_sets`, relative to its folder: the records and
    tables, every declared main shard and sidecar, and the .json and .npy files at the top
    of each set's folder (feature.json; for `units`, the centroids and their fit). The card
    is not among them: it is written from the records."""
    layout, root = dataset.layout, dataset.root
    files = [_relative(layout, path) for path in (layout.info, layout.manifest, layout.rejected)]
    if (root / LICENCE_FILE).is_file():
        files.append(LICENCE_FILE)
    files += [layout.shard_relative(ref) for ref in dataset.shards()]
    for name in feature_sets:
        info = dataset.feature_set(name)
        files += sorted(_relative(layout, path) for path in layout.feature_dir(name).iterdir()
                        if path.is_file() and path.suffix in SET_FILE_SUFFIXES
                        and path.name != MARKER)
        files += [layout.sidecar_relative(name, ShardRef.parse(shard)) for shard in info.shards]
    return files


def _relative(layout: DatasetLayout, path: Path) -> str:
    return path.relative_to(layout.root).as_posix()


def upload_plan(dataset: Dataset, feature_sets: list[str], limits: HubLimits = HubLimits()
                ) -> UploadPlan:
    """The files a push of `dataset` with `feature_sets` uploads, refused (PushRefused) when
    a declared file is missing, when the licence file the card links is missing, when the
    upload patterns would pick up a file the records do not declare, or when the Hub's
    limits would be exceeded."""
    from huggingface_hub.utils import filter_repo_objects

    layout, root = dataset.layout, dataset.root
    declared = dataset_files(dataset, feature_sets)
    missing = [path for path in declared if not (root / path).is_file()]
    if missing:
        raise PushRefused(f"{root} lacks {len(missing)} declared file(s), e.g. {missing[0]}: "
                          "rebuild or re-extract before pushing")
    linked = [t for t in [source_terms(dataset.info.source), *(
        t for name in feature_sets for t in feature_terms(name, dataset.feature_set(name)))]
        if t.link == LICENCE_FILE]
    if linked and not (root / LICENCE_FILE).is_file():
        raise PushRefused(f"the card links {LICENCE_FILE} for the terms of the "
                          f"{linked[0].component}: add their text as {root / LICENCE_FILE}")
    allow = tuple(dict.fromkeys([*(p for p in declared if "/" not in p), "data/*",
                                 *(f"features/{name}/*" for name in feature_sets)]))
    ignore = tuple(layout.PUBLISH_IGNORE)
    on_disk = [p.relative_to(root).as_posix() for p in sorted(root.glob("**/*")) if p.is_file()]
    selected = set(filter_repo_objects(on_disk, allow_patterns=list(allow),
                                       ignore_patterns=list(ignore)))
    stray = sorted(selected - set(declared))
    if stray:
        raise PushRefused(f"{root} holds {len(stray)} file(s) its records do not declare, "
                          f"e.g. {stray[0]!r}: remove them (a push uploads only the dataset)")
    files = tuple(PlannedFile(path, (root / path).stat().st_size) for path in declared)
    _check_limits(files, limits)
    return UploadPlan(root, files, tuple(feature_sets), allow, ignore, SHARD_PATTERNS)


def _check_limits(files: tuple[PlannedFile, ...], limits: HubLimits) -> None:
    """Refuse a plan over the Hub's limits: files per repo, entries per folder, file size."""
    problems = []
    if len(files) + 1 > limits.files_per_repo:  # + the card
        problems.append(f"{len(files) + 1} files (the Hub allows {limits.files_per_repo} "
                        "per repository): build with a larger --shard-size-mb")
    pairs = set()  # (folder, entry) of every file and every folder above it
    for item in files:
        path = PurePosixPath(item.path)
        pairs |= {(str(child.parent), child.name) for child in [path, *path.parents[:-1]]}
    entries = Counter(folder for folder, _ in pairs)
    crowded = [(folder, n) for folder, n in sorted(entries.items())
               if n > limits.entries_per_folder]
    problems += [f"{folder}/ holds {n} entries (the Hub allows {limits.entries_per_folder} per "
                 "folder): build with a larger --shard-size-mb" for folder, n in crowded[:3]]
    large = [item for item in files if item.bytes > limits.file_bytes]
    problems += [f"{item.path} is {item.bytes / 1e9:.1f} GB (the Hub allows "
                 f"{limits.file_bytes / 1e9:.0f} GB per file): build with a smaller "
                 "--shard-size-mb" for item in large[:3]]
    if problems:
        raise PushRefused("over the Hugging Face Hub's limits: " + "; ".join(problems))


# --- verifying a dataset before it is shared ----------------------------------------------


def verify_dataset(dataset: Dataset, feature_sets: list[str]) -> VerifyReport:
    """The dataset read whole with the sidecars of `feature_sets` (`unitaf_data.verify`);
    PushRefused names the first problem found."""
    report = verify(dataset, feature_sets)
    if not report.clean:
        raise PushRefused(f"{dataset.root} has bad data ({len(report.damage)} problem(s); "
                          f"`unitaf-data verify` lists them all); first: {report.damage[0]}")
    return report


# --- push ---------------------------------------------------------------------------------


@dataclass
class PushResult:
    repo_id: str
    plan: UploadPlan
    verification: VerifyReport
    private: bool  # how the repository is created when it is new
    restrictions: list[str]  # non-commercial or unknown terms the data is under (the card says so)
    commit: str | None = None  # the card's commit (the last); None for a dry run


def push_dataset(folder: str | Path, repo_id: str, *, public: bool = False,
                 revision: str | None = None, include_features: list[str] = (),
                 dry_run: bool = False, limits: HubLimits = HubLimits()) -> PushResult:
    """Verify a dataset folder, plan its upload within the Hub's limits, and (unless
    `dry_run`) upload it to the dataset repository `repo_id` (created when missing, private
    unless `public`; on branch `revision`, created from main when missing): the declared
    files with `upload_folder` (resumable by running the push again), then the card for
    exactly the pushed feature sets, which names any non-commercial or unknown terms.
    `include_features`: set names, ["all"], or () for the main shards only."""
    from unitaf_data.licences import dataset_terms, restrictions

    if not is_hub_id(repo_id):
        raise ValueError(f"{repo_id!r} is not a Hub repository id like owner/name")
    if is_url(folder):  # upload_folder reads local files: stage the publishable ones
        with tempfile.TemporaryDirectory(prefix="unitaf-push-") as staging:
            _stage_publishable(Storage.of(str(folder)), Path(staging))
            return push_dataset(staging, repo_id, public=public, revision=revision,
                                include_features=include_features, dry_run=dry_run,
                                limits=limits)
    dataset = Dataset.open_folder(folder)
    sets = select_feature_sets(dataset, list(include_features))
    plan = upload_plan(dataset, sets, limits)
    verification = verify_dataset(dataset, sets)
    result = PushResult(repo_id, plan, verification, not public,
                        restrictions(dataset_terms(dataset, sets)))
    if dry_run:
        return result
    from huggingface_hub import CommitOperationAdd, HfApi, get_token

    from unitaf_data.card import card_text

    if get_token() is None:
        raise PushRefused("no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    card = card_text(dataset, sets, repo_id).encode()
    api = HfApi()
    hub_call(f"create {repo_id}", api.create_repo, repo_id, repo_type="dataset",
             private=not public, exist_ok=True)
    if revision:
        hub_call(f"create the branch {revision}", api.create_branch, repo_id, branch=revision,
                 repo_type="dataset", exist_ok=True)
    hub_call(f"upload to {repo_id}", api.upload_folder, repo_id=repo_id, folder_path=plan.root,
             repo_type="dataset", revision=revision,
             commit_message=f"unitaf dataset: {len(plan.files)} files",
             allow_patterns=list(plan.allow_patterns), ignore_patterns=list(plan.ignore_patterns),
             delete_patterns=list(plan.delete_patterns))
    commit = hub_call(f"commit the card to {repo_id}", api.create_commit, repo_id,
                      [CommitOperationAdd("README.md", card)], commit_message="Dataset card",
                      repo_type="dataset", revision=revision)
    result.commit = commit.oid
    return result


def _stage_publishable(storage: Storage, staging: Path) -> None:
    """Every object of a dataset at a URL except its work folders, copied under `staging`
    (then verified there like any folder before anything is uploaded)."""
    ignore = DatasetLayout.PUBLISH_IGNORE
    for key in storage.list():
        if any(fnmatch.fnmatch(key, pattern) for pattern in ignore):
            continue
        target = staging / key
        target.parent.mkdir(parents=True, exist_ok=True)
        with storage.open(key) as source, open(target, "wb") as sink:
            shutil.copyfileobj(source, sink, 1 << 20)


# --- reading from the Hub -----------------------------------------------------------------


def fetch_declared(repo_id: str, repo_type: str, revision: str | None, names: tuple[str, ...],
                   accept: Callable[[str], bool]) -> Path:
    """The snapshot folder (named by its commit) of `repo_id` at `revision`, holding the
    files `names` (exact paths, no patterns: huggingface_hub's `*` crosses folders) and the
    files of the repository's list at that commit that `accept` takes; nothing else is
    downloaded. Offline, the list is the cached snapshot's."""
    from huggingface_hub import HfApi, errors, snapshot_download

    snapshot = Path(hub_call(f"download the records of {repo_id}", snapshot_download, repo_id,
                             repo_type=repo_type, revision=revision, allow_patterns=[
                                 glob.escape(name) for name in names]))
    commit = snapshot.name  # the cache keeps a snapshot per commit: snapshots/<sha>/
    if not _COMMIT.fullmatch(commit):
        raise HubError(f"{repo_id}: the download is not at a commit ({snapshot})")
    try:
        listed = HfApi().list_repo_files(repo_id, repo_type=repo_type, revision=commit)
    except errors.OfflineModeIsEnabled:
        listed = [p.relative_to(snapshot).as_posix() for p in snapshot.glob("**/*")]
    except _hub_errors() as error:
        raise HubError(f"could not list the files of {repo_id} on the Hugging Face Hub "
                       f"({type(error).__name__}: {error})") from None
    fetch = HubFiles(repo_id, commit, repo_type)
    for relative in sorted(path for path in listed if accept(path)):
        fetch(relative)
    return snapshot


@dataclass(frozen=True)
class HubFiles:
    """`fetch` of a Hub dataset: one file of the repository at one commit, from the cache or
    downloaded (a plain value, so DataLoader and Ray workers can carry it)."""

    repo_id: str
    commit: str
    repo_type: str = "dataset"

    def __call__(self, relative: str) -> Path:
        from huggingface_hub import hf_hub_download

        return Path(hub_call(f"fetch {relative} of {self.repo_id}@{self.commit[:10]}",
                             hf_hub_download, self.repo_id, relative,
                             repo_type=self.repo_type, revision=self.commit))


def open_dataset(reference: str | Path, revision: str | None = None) -> Dataset:
    """A dataset folder, its storage URL (`s3://`, `gs://`), or a Hugging Face Hub dataset
    id (at `revision`)."""
    if is_url(reference):
        if revision:
            raise ValueError(f"--revision applies to Hub datasets, not {reference}")
        return Dataset.open_folder(str(reference))
    path = Path(reference)
    if path.exists():
        if revision:
            raise ValueError(f"--revision applies to Hub datasets, and {path} is a folder")
        return Dataset.open_folder(path)
    return open_hub_dataset(str(reference), revision)


def open_hub_dataset(repo_id: str, revision: str | None = None) -> Dataset:
    """A Hub dataset at `revision` (default: main) resolved to its commit: the records and
    small files downloaded (or found in the cache), shards fetched on demand at that commit;
    `origin` names the repository and the commit."""
    if not is_hub_id(repo_id):
        raise FileNotFoundError(f"{repo_id} is neither a dataset folder nor a Hub dataset id "
                                "(owner/name)")
    snapshot = fetch_declared(repo_id, "dataset", revision, RECORD_FILES,
                              DatasetLayout.is_set_record)
    commit = snapshot.name
    if not (snapshot / "unitaf.json").is_file():
        raise FileNotFoundError(f"{repo_id}@{commit[:10]} is not a unitaf dataset (no "
                                "unitaf.json)")
    return Dataset.open_folder(snapshot, fetch=HubFiles(repo_id, commit),
                               origin={"hub": repo_id, "revision": commit})


@dataclass
class PullResult:
    repo_id: str
    commit: str
    dataset: Dataset  # the local copy
    files: int
    bytes: int


def pull_dataset(repo_id: str, out: str | Path, revision: str | None = None,
                 features: list[str] | None = None, overwrite: bool = False) -> PullResult:
    """Download the dataset `repo_id` at `revision` (resolved to one commit) into `out`: its
    records and tables, every main shard, and the sidecars of `features` (None: every
    set), nothing else; then check every shard against its recorded size and sha256.
    `out` must be new or empty; `overwrite` first deletes a dataset folder the toolkit made
    there (`unitaf_data.owned`), and nothing else."""
    from huggingface_hub import hf_hub_download

    out = Path(out)
    _check_pull_target(out, overwrite)
    remote = open_hub_dataset(repo_id, revision)
    commit = remote.origin["revision"]
    sets = select_feature_sets(remote, features)
    if overwrite:
        owned.remove(out, "dataset", "choose a new --out")
    owned.claim(out, "dataset", "choose a new --out")
    small = {p.relative_to(remote.root).as_posix() for p in remote.root.glob("**/*")
             if p.is_file()}
    files = dataset_files(remote, sets) + (["README.md"] if "README.md" in small else [])
    for relative in (f for f in files if f in small):
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(remote.root / relative, out / relative)

    def download(relative: str) -> None:
        hub_call(f"download {relative} of {repo_id}@{commit[:10]}", hf_hub_download, repo_id,
                 relative, repo_type="dataset", revision=commit, local_dir=out)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(download, [f for f in files if f not in small]))
    local = Dataset.open_folder(out, origin={"path": str(out.resolve()), "hub": repo_id,
                                             "revision": commit})
    for relative, record, shard in _shard_records(local, sets):
        verify_file(out / relative, record, shard)
    local.check_sidecars(sets, local.splits)
    return PullResult(repo_id, commit, local, len(files),
                      sum((out / f).stat().st_size for f in files))


def _check_pull_target(out: Path, overwrite: bool) -> None:
    """Refuse, before any download, an --out that holds anything unless it is a dataset
    the toolkit made and `overwrite` was asked for."""
    if overwrite:
        owned.check_owned(out, "dataset", "choose a new --out")
    elif out.is_symlink() or (out.exists() and not owned.is_empty(out)):
        raise owned.ForeignFolder(f"{out} {owned.describe(out)}: choose a new --out (or pass "
                                  "--overwrite to replace a dataset folder unitaf made)")


def _shard_records(dataset: Dataset, feature_sets: list[str]
                   ) -> list[tuple[str, ShardInfo, str]]:
    """(relative path, record, shard id) of every main shard and sidecar of the sets."""
    layout = dataset.layout
    found = [(layout.shard_relative(ref), dataset.info.shards[ref.id], ref.id)
             for ref in dataset.shards()]
    for name in feature_sets:
        for shard, record in dataset.feature_set(name).shards.items():
            ref = ShardRef.parse(shard)
            found.append((layout.sidecar_relative(name, ref), record,
                          f"features/{name}/{shard}"))
    return found
