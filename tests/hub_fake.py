"""A Hugging Face Hub in a temporary folder, for offline tests.

Repositories hold commits (a sha1 over the file tree, the parent and the message, like git's
commit ids), branches point at commits, and files are stored once by content. The calls the
toolkit makes are served the way huggingface_hub serves them: `upload_folder` lists and
filters the folder with the library's own `filter_repo_objects` and default ignore
patterns, `hf_hub_download` / `snapshot_download` give files under a cache laid out as
`{repo}/snapshots/{commit}/` (or into `local_dir`), errors are the library's error types.
`install(monkeypatch)` puts it where the toolkit looks the functions up (the
`huggingface_hub` module's attributes, read at call time).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import errors
from huggingface_hub.utils import filter_repo_objects
from huggingface_hub.utils._paths import DEFAULT_IGNORE_PATTERNS


@dataclass
class Repo:
    private: bool
    commits: dict[str, dict[str, str]] = field(default_factory=dict)  # sha → {path: blob}
    refs: dict[str, str] = field(default_factory=dict)  # branch → sha


@dataclass
class CommitInfo:
    oid: str


def _not_found(kind: type, message: str) -> Exception:
    client = importlib.import_module(errors.Response.__module__.split(".")[0])
    request = client.Request("GET", "https://huggingface.co/api/fake")
    return kind(message, response=errors.Response(404, request=request))


class FakeHub:
    """The remote side (repositories, blobs) and the client calls, in `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.cache = root / "cache"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.state = root / "state.json"  # the repositories, so that another process (a
        # command run as a subprocess, killed, run again) sees the same Hub
        self.repos: dict[tuple[str, str], Repo] = {
            (kind, name): Repo(**repo) for kind, name, repo in json.loads(
                self.state.read_text())} if self.state.exists() else {}
        self.downloads: list[tuple[str, str, str]] = []  # (repo, file, commit) served
        self.commit_messages: list[str] = []

    # --- HfApi methods -------------------------------------------------------------------

    def __call__(self, *args, **kwargs) -> FakeHub:  # stands where `HfApi()` is called
        return self

    def create_repo(self, repo_id: str, *, repo_type: str | None = None,
                    private: bool | None = None, exist_ok: bool = False, **_) -> str:
        key = (repo_type or "model", repo_id)
        if key in self.repos:
            if not exist_ok:
                raise ValueError(f"{repo_id} exists")
        else:
            self.repos[key] = Repo(bool(private))
            self._commit(key, None, {}, "initial commit")
        return f"https://huggingface.co/{repo_id}"

    def create_branch(self, repo_id: str, *, branch: str, revision: str | None = None,
                      repo_type: str | None = None, exist_ok: bool = False, **_) -> None:
        repo = self._repo(repo_type, repo_id)
        if branch in repo.refs and not exist_ok:
            raise ValueError(f"branch {branch} exists")
        repo.refs.setdefault(branch, self._resolve(repo_type, repo_id, revision))

    def upload_folder(self, *, repo_id: str, folder_path, repo_type: str | None = None,
                      revision: str | None = None, commit_message: str | None = None,
                      allow_patterns=None, ignore_patterns=None, delete_patterns=None,
                      **_) -> CommitInfo:
        folder = Path(folder_path).resolve()
        found = {p.relative_to(folder).as_posix(): p for p in sorted(folder.glob("**/*"))
                 if p.is_file()}
        chosen = filter_repo_objects(found, allow_patterns=allow_patterns,
                                     ignore_patterns=list(ignore_patterns or [])
                                     + DEFAULT_IGNORE_PATTERNS)
        added = {path: self._store(found[path].read_bytes()) for path in chosen}
        tree = dict(self._tree(repo_type, repo_id, revision))
        for path in filter_repo_objects(list(tree), allow_patterns=delete_patterns or []):
            if path not in added:
                del tree[path]
        return self._commit((repo_type or "model", repo_id), revision, tree | added,
                            commit_message or "upload folder")

    def create_commit(self, repo_id: str, operations, *, commit_message: str,
                      repo_type: str | None = None, revision: str | None = None,
                      **_) -> CommitInfo:
        tree = dict(self._tree(repo_type, repo_id, revision))
        for operation in operations:
            source = operation.path_or_fileobj
            data = source if isinstance(source, bytes) else Path(source).read_bytes() \
                if isinstance(source, str | Path) else source.read()
            tree[operation.path_in_repo] = self._store(data)
        return self._commit((repo_type or "model", repo_id), revision, tree, commit_message)

    def list_repo_files(self, repo_id: str, *, revision: str | None = None,
                        repo_type: str | None = None, **_) -> list[str]:
        return sorted(self._tree(repo_type, repo_id, revision))

    # --- module functions ----------------------------------------------------------------

    def hf_hub_download(self, repo_id: str, filename: str, *, repo_type: str | None = None,
                        revision: str | None = None, local_dir=None, **_) -> str:
        commit = self._resolve(repo_type, repo_id, revision)
        tree = self._repo(repo_type, repo_id).commits[commit]
        if filename not in tree:
            raise _not_found(errors.RemoteEntryNotFoundError,
                             f"{filename} not in {repo_id}@{commit}")
        self.downloads.append((repo_id, filename, commit))
        target = (Path(local_dir) if local_dir else self._snapshot(repo_type, repo_id, commit)
                  ) / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.blobs / tree[filename], target)
        return str(target)

    def snapshot_download(self, repo_id: str, *, repo_type: str | None = None,
                          revision: str | None = None, allow_patterns=None, **_) -> str:
        commit = self._resolve(repo_type, repo_id, revision)
        tree = self._repo(repo_type, repo_id).commits[commit]
        for path in filter_repo_objects(list(tree), allow_patterns=allow_patterns):
            self.hf_hub_download(repo_id, path, repo_type=repo_type, revision=commit)
        snapshot = self._snapshot(repo_type, repo_id, commit)
        snapshot.mkdir(parents=True, exist_ok=True)
        return str(snapshot)

    # --- inspection for tests ------------------------------------------------------------

    def files(self, repo_id: str, repo_type: str = "dataset", revision: str | None = None
              ) -> dict[str, bytes]:
        tree = self._tree(repo_type, repo_id, revision)
        return {path: (self.blobs / blob).read_bytes() for path, blob in tree.items()}

    def head(self, repo_id: str, repo_type: str = "dataset", branch: str = "main") -> str:
        return self._repo(repo_type, repo_id).refs[branch]

    def tamper(self, repo_id: str, path: str, data: bytes, repo_type: str = "dataset") -> str:
        """A new commit on main where `path` holds `data` (records unchanged)."""
        tree = dict(self._tree(repo_type, repo_id, None))
        tree[path] = self._store(data)
        return self._commit((repo_type, repo_id), None, tree, f"tamper {path}").oid

    # --- storage -------------------------------------------------------------------------

    def _repo(self, repo_type: str | None, repo_id: str) -> Repo:
        repo = self.repos.get((repo_type or "model", repo_id))
        if repo is None:
            raise _not_found(errors.RepositoryNotFoundError, f"{repo_id} not found")
        return repo

    def _resolve(self, repo_type: str | None, repo_id: str, revision: str | None) -> str:
        repo = self._repo(repo_type, repo_id)
        revision = revision or "main"
        if revision in repo.refs:
            return repo.refs[revision]
        if revision in repo.commits:
            return revision
        raise _not_found(errors.RevisionNotFoundError, f"{repo_id}@{revision} not found")

    def _tree(self, repo_type, repo_id, revision) -> dict[str, str]:
        return self._repo(repo_type, repo_id).commits[
            self._resolve(repo_type, repo_id, revision)]

    def _store(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self.blobs / digest
        if not path.exists():
            path.write_bytes(data)
        return digest

    def _commit(self, key: tuple[str, str], revision: str | None, tree: dict[str, str],
                message: str) -> CommitInfo:
        repo = self.repos[key]
        branch = revision or "main"
        parent = repo.refs.get(branch, "")
        sha = hashlib.sha1(json.dumps([sorted(tree.items()), parent, message]).encode()
                           ).hexdigest()
        repo.commits[sha] = dict(tree)
        repo.refs[branch] = sha
        self.commit_messages.append(message)
        self._save()
        return CommitInfo(sha)

    def _save(self) -> None:
        """The repositories written whole, then renamed: a commit is atomic, as on the Hub."""
        tmp = self.state.with_name("state.json.tmp")
        tmp.write_text(json.dumps([[kind, name, vars(repo)] for (kind, name), repo
                                   in self.repos.items()]))
        tmp.replace(self.state)

    def _snapshot(self, repo_type: str | None, repo_id: str, commit: str) -> Path:
        folder = f"{repo_type or 'model'}s--{repo_id.replace('/', '--')}"
        return self.cache / folder / "snapshots" / commit


def install(monkeypatch, root: Path, token: str | None = "hf_fake_token_for_tests"
            ) -> FakeHub:
    """A FakeHub standing where the toolkit looks huggingface_hub up, caches in `root`."""
    import huggingface_hub
    import huggingface_hub.constants

    hub = FakeHub(root / "hub")
    monkeypatch.setenv("HF_HOME", str(root / "hf_home"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub.cache))
    if token is None:
        monkeypatch.delenv("HF_TOKEN", raising=False)
    else:
        monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setattr(huggingface_hub, "HfApi", hub)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hub.hf_hub_download)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub.snapshot_download)
    return hub

