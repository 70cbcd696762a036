"""The Hub readers against hostile repositories on the fake Hub (tests/hub_fake.py).

Datasets: the small valid dataset of test_fuzz.py published to a dataset repo, then per case
a seeded sample of test_fuzz.py's corruptions (shards, sidecars, unitaf.json,
feature.json, manifest), hostile dataset cards (README.md front matter: YAML tags that
would run code, anchors, a billion-laughs bomb, bytes that are not UTF-8), and undeclared
or nested paths in the repository's file list (`data/../x.npy`, `features/a/b/c/d.npy`,
names with `::pipe:`, URLs, braces). Runs: the small run published to a model repo, with
test_fuzz.py's corruptions of `model.json`, `config.json` and the safetensors weights, and
undeclared paths. Readers: `open_dataset(HUB_ID)` with every sample read (Skips counting),
`pull_dataset`, and `open_run(HUB_ID)`. Each case gives the reader's named error or a
counted skip, never another exception or a hang; and only declared files are ever fetched
(checked on the fake's request log). A card is never parsed by the toolkit: it is copied
byte for byte by `pull`.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from test_fuzz import (
    PAYLOAD,
    SETS,
    all_cases,
    build_dataset,
    build_run,
    outcome,
    run_cases,
)

from hub_fake import install
from unitaf_data.hub import RECORD_FILES, open_dataset, pull_dataset
from unitaf_data.reader import ShardError, Skips
from unitaf_data.schema import RecordError

pytestmark = pytest.mark.e2e

UNDECLARED = [
    "data/../x.npy", "data/train/../../x.npy", "features/a/b/c/d.npy", "features/feat/a/b.npy",
    "features/feat/train/extra.npy", "features/feat/sub/feature.json", "features/x.npy",
    "features/feat/extra.json", "features/feat/notes.npy", "features/Feat/feature.json",
    "features/feat/feature.json.npy", f"features/feat::pipe:touch {PAYLOAD} #/feature.json",
    f"features/feat/centroids.npy::pipe:touch {PAYLOAD} #", "features/{a,b}/feature.json",
    "features/${HOME}/feature.json", "https://example.com/x.npy",
    "features/https://example.com/feature.json", "data/train/train-000001.tar",
    "data/train/train-000000.tar.tmp", ".build/state.json", "features/.build/feat/done.json",
    "unitaf.json/x.npy", "README.md/x", "nested/unitaf.json", "data/train/x::pipe:ls #.tar",
    "features/feat/../../unitaf.json", "features/feat/./feature.json", "features//feature.json",
    "./unitaf.json", "features/units_fit/feature.json",
]
RUN_UNDECLARED = [
    "eval/../x.npy", "eval/test/videos/a.mp4", "step_000001/../../x.safetensors",
    "step_000001/extra/model.safetensors", "best/sub/model.safetensors",
    "step_1/model.safetensors", "step_000001/state.safetensors", "step_000001/state.json",
    f"rig.npz::pipe:touch {PAYLOAD} #", "https://example.com/model.safetensors",
    "model.json/x", "sub/model.json", "front_end.safetensors.bak", "a/b/c/d.npy",
]
CARDS = {
    "python tag": b"---\nlicense: !!python/object/apply:os.system ['touch PWNED']\n---\nx\n",
    "billion laughs": b"---\n" + b"a: &a [x,x,x,x,x,x,x,x,x]\n" + b"".join(
        f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n".encode()
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)) + b"---\n",
    "not utf-8": b"---\nlicense: \xff\xfe\n---\n",
    "unclosed front matter": b"---\nlicense: mit\n",
    "front matter a list": b"---\n- 1\n- 2\n---\n",
    "huge": b"---\nlicense: mit\n---\n" + b"x" * (8 << 20),
    "empty": b"",
    "nested deep": b"---\na: " + b"[" * 50_000 + b"\n---\n",
}
DATASET_CASES = 150  # of test_fuzz.py's dataset corruptions, sampled with a seed
RUN_CASES = 80


def publish(hub, repo_id: str, folder: Path, repo_type: str,
            extra: dict[str, bytes] | None = None) -> None:
    """`folder`'s files as a repository, then `extra` paths as they would be listed (the
    fake stores any path, as a hostile repository's list may hold any)."""
    hub.create_repo(repo_id, repo_type=repo_type)
    hub.upload_folder(repo_id=repo_id, folder_path=folder, repo_type=repo_type)
    for path, data in (extra or {}).items():
        hub.tamper(repo_id, path, data, repo_type=repo_type)


def declared_dataset_files(hub, repo_id: str) -> set[str]:
    """What a reader may fetch: the records, the sets' records, and the shards and sidecars
    the published records declare (whether or not they are damaged)."""
    listed = set(hub.files(repo_id))
    shards = {f"data/{s}.tar" for s in ("train/train-000000", "val/val-000000")}
    sidecars = {f"features/feat/{s}.tar" for s in ("train/train-000000", "val/val-000000")}
    sets = {"features/feat/feature.json", "features/evil/feature.json"}
    return (set(RECORD_FILES) | shards | sidecars | sets) & listed | (shards | sidecars)


def _open_and_read(repo_id: str) -> str:
    dataset = open_dataset(repo_id)
    skips = Skips()
    for sample in dataset.samples(dataset.shards(), SETS, skips):
        try:
            sample.audio()
        except ShardError as error:
            skips.add(error)
    return f"skipped {skips.total}" if skips.total else "ok"


def _pull(out: Path) -> Callable[[str], str]:
    def read(repo_id: str) -> str:
        pull_dataset(repo_id, out / repo_id.replace("/", "_"))
        return "ok"
    return read


def _load_run(repo_id: str) -> str:
    from unitaf_model.hub import open_run

    open_run(repo_id)
    return "ok"


def _sample(cases: list, count: int, rng: np.random.Generator) -> list:
    return [cases[i] for i in sorted(rng.choice(len(cases), count, replace=False))]


def dataset_cases(rng: np.random.Generator) -> list[tuple[str, Callable, dict[str, bytes]]]:
    """(kind, mutate the local copy, extra repository paths)."""
    corrupt = [(kind, mutate, {}) for kind, target, mutate in all_cases()
               if target == "dataset" and "shard file named" not in kind]
    cases = _sample(corrupt, DATASET_CASES, rng)
    cases += [(f"undeclared path {path[:40]!r}", lambda root: None, {path: b"\x93NUMPY"})
              for path in UNDECLARED]
    cases.append(("every undeclared path at once", lambda root: None,
                  {path: b"{}" for path in UNDECLARED}))
    cases.append(("a hostile set record at a declared path", lambda root: None,
                  {"features/evil/feature.json": b'{"name": "evil", "shards": 7}'}))
    cases += [(f"card: {what}", lambda root: None, {"README.md": data})
              for what, data in CARDS.items()]
    return cases


READERS = {
    "open_dataset(hub id) + samples": (_open_and_read, (RecordError, FileNotFoundError)),
    "pull_dataset": (None, (RecordError, FileNotFoundError, ShardError, ValueError)),
}


def test_hub_dataset_readers_give_named_errors_and_fetch_only_declared_files(
        tmp_path, monkeypatch):
    hub = install(monkeypatch, tmp_path / "fake")
    pristine = tmp_path / "pristine"
    build_dataset(pristine)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # where a `pipe:touch PWNED` would write
    readers = dict(READERS)
    readers["pull_dataset"] = (_pull(tmp_path / "pulled"), READERS["pull_dataset"][1])
    cases = dataset_cases(np.random.default_rng(23))
    counts: Counter = Counter()
    failures = []
    for index, (kind, mutate, extra) in enumerate(cases):
        local, repo_id = tmp_path / f"local{index}", f"fuzz/ds{index}"
        shutil.copytree(pristine, local)
        mutate(local)
        publish(hub, repo_id, local, "dataset", extra)
        before = len(hub.downloads)
        for name, (read, allowed) in readers.items():
            result = outcome(read, repo_id, allowed)
            counts[name, result.split(":")[0] if result.startswith("UNEXPECTED")
                   else result.split()[0]] += 1
            if result.startswith(("UNEXPECTED", "HANG")):
                failures.append(f"{kind} → {name}: {result}")
        fetched = {file for repo, file, _ in hub.downloads[before:] if repo == repo_id}
        undeclared = fetched - declared_dataset_files(hub, repo_id)
        if undeclared:
            failures.append(f"{kind}: fetched undeclared {sorted(undeclared)}")
        if kind.startswith("card:") and (tmp_path / "pulled" / f"fuzz_ds{index}").exists():
            pulled = tmp_path / "pulled" / f"fuzz_ds{index}" / "README.md"
            if pulled.read_bytes() != extra["README.md"]:
                failures.append(f"{kind}: the pulled card differs from the published one")
        if (work / PAYLOAD).exists():
            failures.append(f"{kind}: a command ran")
        shutil.rmtree(local)
    _report("dataset repositories", cases, counts)
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:40])
    assert len(cases) >= 190


def test_hub_runs_give_named_errors_and_fetch_only_what_load_run_reads(tmp_path, monkeypatch):
    hub = install(monkeypatch, tmp_path / "fake")
    pristine = tmp_path / "pristine"
    build_run(pristine)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    rng = np.random.default_rng(29)
    cases = [(kind, mutate, {}) for kind, _, mutate in _sample(run_cases(rng), RUN_CASES, rng)]
    cases += [(f"undeclared path {path[:40]!r}", lambda root: None, {path: b"x"})
              for path in RUN_UNDECLARED]
    readable = {"model.json", "config.json", "rig.npz", "front_end.safetensors",
                "best/model.safetensors", "best/best.json", "step_000001/model.safetensors"}
    counts: Counter = Counter()
    failures = []
    for index, (kind, mutate, extra) in enumerate(cases):
        local, repo_id = tmp_path / f"local{index}", f"fuzz/run{index}"
        shutil.copytree(pristine, local)
        mutate(local)
        publish(hub, repo_id, local, "model", extra)
        before = len(hub.downloads)
        result = outcome(_load_run, repo_id, (RecordError, FileNotFoundError))
        counts["open_run(hub id)", result.split(":")[0] if result.startswith("UNEXPECTED")
               else result] += 1
        if result.startswith(("UNEXPECTED", "HANG")):
            failures.append(f"{kind} → open_run: {result}")
        fetched = {file for repo, file, _ in hub.downloads[before:] if repo == repo_id}
        if fetched - readable:
            failures.append(f"{kind}: fetched undeclared {sorted(fetched - readable)}")
        if kind.startswith("undeclared") and result != "ok":
            failures.append(f"{kind}: an undeclared file stopped the run loading ({result})")
        shutil.rmtree(local)
    _report("run repositories", cases, counts)
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:40])
    assert len(cases) >= 90


def test_opening_a_hub_dataset_no_longer_downloads_nested_npy_files(tmp_path, monkeypatch):
    """The bug of issue 17: the records were fetched with `features/*/*.npy`, and `*`
    crosses folders in huggingface_hub's patterns, so any nested .npy came along."""
    hub = install(monkeypatch, tmp_path / "fake")
    build_dataset(tmp_path / "d")
    publish(hub, "fuzz/nested", tmp_path / "d", "dataset",
            {"features/a/b/c/d.npy": b"\x93NUMPY", "features/feat/x/y.json": b"{}"})
    dataset = open_dataset("fuzz/nested")
    fetched = {file for _, file, _ in hub.downloads}
    assert fetched == {"README.md", "unitaf.json", "manifest.parquet", "rejected.parquet",
                       "features/feat/feature.json"} & set(hub.files("fuzz/nested"))
    assert dataset.feature_set_names() == ["feat"]


def _report(what: str, cases: list, counts: Counter) -> None:
    print(f"\n{len(cases)} hostile {what}:")
    for (reader, result), count in sorted(counts.items()):
        print(f"  {reader:34s} {result:26s} {count}")
