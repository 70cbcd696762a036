"""Every reader of untrusted data against over a thousand corrupted inputs.

A small valid dataset (two main shards, one sidecar set, manifest, records) and a small run
are written here without Ray; each case corrupts a fresh copy of them: truncations at random
offsets, bit flips in tar headers and data (with and without the records updated to match,
as an attacker who controls the whole folder would), pickled and object arrays, npz in an
`.npy`, wrong dtypes and shapes, NaN, duplicate and traversal member names, `::pipe:` and
brace names, links and devices, mismatched sidecars, hostile manifest, unitaf.json,
feature.json, model.json, config.json and safetensors. Each reader must give its documented
error or a counted skip: never another exception, a hang, or a file written anywhere.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import io
import json
import math
import os
import pickle
import shutil
import signal
import tarfile
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from unitaf_data.audio import flac_bytes
from unitaf_data.card import write_table
from unitaf_data.dataset import Dataset, keys_digest, write_json
from unitaf_data.reader import ShardError, Skips
from unitaf_data.schema import (
    AsrInfo,
    ClipMeta,
    DatasetInfo,
    FeatureChecks,
    FeatureSetInfo,
    FieldSpec,
    RecordError,
    ShardInfo,
    Word,
)
from unitaf_data.shards import json_bytes, npy_bytes

pytestmark = pytest.mark.e2e

CHANNELS = ("JawOpen", "MouthClose", "EyeBlinkLeft", "EyeBlinkRight")
FPS, FRAMES, RATE = 25.0, 25, 16_000
SETS = {"feat": ["teacher.npy", "units.npy"]}
SHARDS = {"train/train-000000": 3, "val/val-000000": 1}
PAYLOAD = "PWNED"  # what a `pipe:touch PWNED` in a name would create in the working folder
TIME_LIMIT = 10.0  # seconds one reader may take on one input


# --- a small valid dataset and run ----------------------------------------------------------


def _keys(shard: str) -> list[str]:
    split, count = shard.split("/")[0], SHARDS[shard]
    return [f"fuzz-spk{i}-{split}{i}-0000" for i in range(count)]


def _clip(key: str, split: str) -> dict[str, bytes]:
    tone = 0.3 * np.sin(np.arange(RATE) * 2 * np.pi * 220 / RATE).astype(np.float32)
    face = np.linspace(0, 1, FRAMES * len(CHANNELS), dtype=np.float32).reshape(FRAMES, -1)
    meta = ClipMeta(
        key=key, text="a test", text_source="asr", words=(Word("a", 0.1, 0.3),),
        language="en", speaker=key.split("-")[1], emotion="neutral", split=split,
        source="demo", recording=key.split("-")[2], start=0.0, end=1.0, duration=1.0,
        sample_rate=RATE, fps=FPS, face_type="arkit51", num_frames=FRAMES, rms_db=-12.0,
        asr=AsrInfo("tiny.en", "a test", -0.2, 0.01, 1.1))
    return {"face.npy": npy_bytes(face), "flac": flac_bytes(tone), "json": json_bytes(
        meta.to_dict())}


def _sidecar(index: int) -> dict[str, bytes]:
    teacher = np.full((50, 8), index, dtype=np.float16)
    return {"teacher.npy": npy_bytes(teacher),
            "units.npy": npy_bytes((np.arange(50) % 16).astype(np.int16))}


def tar_bytes(members: list[tuple[str, bytes]], kinds: dict[str, bytes] | None = None
              ) -> bytes:
    """A plain tar of `(name, data)` regular files (`kinds`: name → tar type for others)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            if kinds and name in kinds:
                info.type, info.size, info.linkname = kinds[name], 0, "../../etc/passwd"
                archive.addfile(info)
            else:
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _members(samples: list[tuple[str, dict[str, bytes]]]) -> list[tuple[str, bytes]]:
    return [(f"{key}.{name}", data) for key, fields in samples for name, data in fields.items()]


def _record(data: bytes, keys: list[str]) -> ShardInfo:
    return ShardInfo(len(keys), len(data), hashlib.sha256(data).hexdigest(), keys_digest(keys))


def build_dataset(root: Path) -> None:
    root.mkdir(parents=True)
    main, side, rows = {}, {}, []
    for shard, _ in SHARDS.items():
        split, name = shard.split("/")
        keys = _keys(shard)
        data = tar_bytes(_members([(k, _clip(k, split)) for k in keys]))
        (root / "data" / split).mkdir(parents=True)
        (root / "data" / split / f"{name}.tar").write_bytes(data)
        main[shard] = _record(data, keys)
        data = tar_bytes(_members([(k, _sidecar(i)) for i, k in enumerate(keys)]))
        (root / "features" / "feat" / split).mkdir(parents=True)
        (root / "features" / "feat" / split / f"{name}.tar").write_bytes(data)
        side[shard] = _record(data, keys)
        rows += [{"key": k, "split": split, "shard": name, "speaker": k.split("-")[1],
                  "duration": 1.0, "text": "a test", "emotion": "neutral"} for k in keys]
    info = DatasetInfo(source="demo", face_type="arkit51", channels=CHANNELS, fps=FPS,
                       sample_rate=RATE, build_settings={}, counts={"clips": len(rows)},
                       shards=main)
    write_json(root / "unitaf.json", info.to_dict())
    feature = FeatureSetInfo(
        name="feat", backend="offline", model={"name": "fuzz"},
        fields={"teacher.npy": FieldSpec("float16", ("T", 8)),
                "units.npy": FieldSpec("int16", ("T",))},
        frame_rate=50.0, dims=16, settings={}, checks=FeatureChecks(len(rows), 0.001),
        shards=side)
    write_json(root / "features" / "feat" / "feature.json", feature.to_dict())
    write_table(root / "manifest.parquet", rows)
    write_table(root / "rejected.parquet", [], ("what", "where", "reason", "detail"))


def build_run(root: Path) -> None:
    import torch

    from unitaf_model.model.decoder import PRETRAINED_IDENTITIES
    from unitaf_model.model.unitaf import UniTAF
    from unitaf_model.run import ModelArgs, RunInfo, save_weights

    args = ModelArgs("units", 16, 8, "arkit51", CHANNELS, PRETRAINED_IDENTITIES + 2)
    info = RunInfo(stage=1, model=args, inputs={"backbone_set": "feat", "backbone_field":
                   "units.npy", "teacher_set": "feat", "teacher_field": "teacher.npy"},
                   fps=FPS, face_fps=FPS, speakers={"spk0": PRETRAINED_IDENTITIES}, rig=None,
                   mouth_interval=None,
                   front_end={"backend": "offline", "set": "feat", "field": "units.npy"},
                   dataset={"path": "elsewhere"})
    torch.manual_seed(0)
    model = UniTAF("units", 16, 8, "arkit51", len(CHANNELS), torch.zeros(len(CHANNELS)),
                   identities=args.identities)
    (root / "step_000001").mkdir(parents=True)
    save_weights(model.state_dict(), root / "step_000001" / "model.safetensors")
    write_json(root / "model.json", info.to_dict())
    write_json(root / "config.json", {"stage": 1})


# --- the corruptions ------------------------------------------------------------------------

Case = tuple[str, str, Callable[[Path], None]]  # (kind, target: dataset | run, mutate)
# Corruptions that may leave valid data (a flipped bit in a float or in FLAC audio behind an
# updated record, a record value that is still valid, a manifest the shard readers do not
# read, an undeclared file): every other kind must be detected by the shard readers.
MAY_PASS = ("bit flip in a member", "a value replaced, removed or added", "manifest:",
            "fortran as", "shard file named to run a command", "bit flip in the weights' data")


def must_detect(kind: str) -> bool:
    return "record kept" in kind or not any(phrase in kind for phrase in MAY_PASS)


def _rewrite_shard(root: Path, shard: str, data: bytes, feature: bool = False,
                   keys: list[str] | None = None) -> None:
    """Replace a shard's file and, as an attacker would, its record (count and keys as
    given, else as before)."""
    split, name = shard.split("/")
    folder = root / "features" / "feat" if feature else root / "data"
    (folder / split / f"{name}.tar").write_bytes(data)
    record_path = root / ("features/feat/feature.json" if feature else "unitaf.json")
    record = json.loads(record_path.read_text())
    old = record["shards"][shard]
    new = _record(data, keys or _keys(shard)).to_dict()
    record["shards"][shard] = {**new, "samples": len(keys) if keys else old["samples"],
                               "keys_sha256": new["keys_sha256"] if keys else
                               old["keys_sha256"]}
    record_path.write_text(json.dumps(record))


def _file_of(root: Path, shard: str, feature: bool = False) -> Path:
    split, name = shard.split("/")
    return (root / "features" / "feat" if feature else root / "data") / split / f"{name}.tar"


def _member_offsets(data: bytes) -> list[tuple[int, int, int]]:
    """(header offset, data offset, size) of each member of a tar."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        return [(m.offset, m.offset_data, m.size) for m in archive.getmembers()]


def byte_cases(rng: np.random.Generator) -> list[Case]:
    """Truncations and bit flips of main shards and sidecars, records updated or not."""
    cases: list[Case] = []

    def truncate(shard, feature, update, fraction):
        def mutate(root):
            path = _file_of(root, shard, feature)
            data = path.read_bytes()
            _, start, size = _member_offsets(data)[-1]
            meaningful = start + math.ceil(size / 512) * 512 + 1024  # then only padding
            data = data[: int(fraction * meaningful)]
            if update:
                _rewrite_shard(root, shard, data, feature)
            else:
                path.write_bytes(data)
        return mutate

    def flip(shard, feature, update, where, pick):
        def mutate(root):
            path = _file_of(root, shard, feature)
            data = bytearray(path.read_bytes())
            header, start, size = pick(_member_offsets(bytes(data)))
            offset = header + int(where * 512) if size is None else start + int(where * size)
            data[offset] ^= 1 << int(where * 8 * 997) % 8
            if update:
                _rewrite_shard(root, shard, bytes(data), feature)
            else:
                path.write_bytes(bytes(data))
        return mutate

    for i in range(200):
        shard = list(SHARDS)[i % 2]
        feature, update = bool(i % 3 == 0), i % 5 != 0
        cases.append((f"truncate {'sidecar' if feature else 'main'}"
                      f"{'' if update else ', record kept'}", "dataset",
                      truncate(shard, feature, update, float(rng.uniform(0, 1)))))
    for i in range(260):
        shard = list(SHARDS)[i % 2]
        feature, update, header = bool(i % 3 == 0), i % 7 != 0, i % 2 == 0
        member = int(rng.integers(0, 1 << 30))

        def pick(members, member=member, header=header):
            offset, start, size = members[member % len(members)]
            return (offset, start, None) if header else (offset, start, max(size, 1))

        cases.append((f"bit flip in a {'header' if header else 'member'} of the "
                      f"{'sidecar' if feature else 'main shard'}"
                      f"{'' if update else ', record kept'}", "dataset",
                      flip(shard, feature, update, float(rng.uniform(0, 1)), pick)))
    return cases


def _npy_header(shape, descr="<f4", fortran=False) -> bytes:
    header = repr({"descr": descr, "fortran_order": fortran, "shape": shape}).encode()
    header += b" " * ((64 - (10 + len(header) + 1) % 64) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header


def _face(**change) -> bytes:
    face = np.zeros((FRAMES, len(CHANNELS)), np.float32)
    return npy_bytes(change.get("array", face))


def _pickled_npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def _npz() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, face=np.zeros((FRAMES, len(CHANNELS)), np.float32))
    return buffer.getvalue()


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {PAYLOAD}",))


HOSTILE_ARRAYS = {
    "pickled object array": _pickled_npy(),
    "raw pickle": pickle.dumps(_Evil()),
    "npz in npy": _npz(),
    "float64": npy_bytes(np.zeros((FRAMES, 4), np.float64)),
    "int32": npy_bytes(np.zeros((FRAMES, 4), np.int32)),
    "complex64": npy_bytes(np.zeros((FRAMES, 4), np.complex64)),
    "big-endian": npy_bytes(np.zeros((FRAMES, 4), ">f4")),
    "unicode": npy_bytes(np.array([["ab"] * 4] * FRAMES)),
    "1-D": npy_bytes(np.zeros(FRAMES, np.float32)),
    "3-D": npy_bytes(np.zeros((FRAMES, 2, 2), np.float32)),
    "wrong width": npy_bytes(np.zeros((FRAMES, 5), np.float32)),
    "empty": npy_bytes(np.zeros((0, 4), np.float32)),
    "NaN": npy_bytes(np.full((FRAMES, 4), np.nan, np.float32)),
    "inf": npy_bytes(np.full((FRAMES, 4), np.inf, np.float32)),
    "fortran": npy_bytes(np.asfortranarray(np.zeros((FRAMES, 4), np.float32))),
    "short payload": npy_bytes(np.zeros((FRAMES, 4), np.float32))[:-7],
    "huge shape, no data": _npy_header((2**62, 4)),
    "overflowing shape": _npy_header((2**40, 2**40)),
    "negative shape": _npy_header((-1, 4)),
    "version 3": b"\x93NUMPY\x03\x00" + _npy_header((FRAMES, 4))[8:],
    "garbage header": b"\x93NUMPY\x01\x00\x20\x00{'descr': __import__('os')}\n" + b" " * 20,
    "object descr": _npy_header((2,), "|O"),
    "structured descr": _npy_header((FRAMES,), [("a", "<f4"), ("b", "<f4")]),
}
HOSTILE_NAMES = ["../evil.json", "/abs.face.npy", "a/b.json", "k.pyd", "k.json::pipe:touch "
                 f"{PAYLOAD} #", "{a,b}.json", "${HOME}.json", "k.face.npy.tmp", ".hidden.json",
                 "__key__.json", "k" * 300 + ".json", "ké.json", "k.", ".json", "k.pth",
                 "k.pickle"]


def _with_member(root: Path, shard: str, change: Callable[[list], list], feature=False,
                 keys: list[str] | None = None) -> None:
    """Rebuild a shard from its members after `change` and update its record."""
    with tarfile.open(_file_of(root, shard, feature)) as archive:
        members = [(m.name, archive.extractfile(m).read()) for m in archive.getmembers()]
    _rewrite_shard(root, shard, tar_bytes(change(members)), feature, keys)


def crafted_cases() -> list[Case]:
    """Members and arrays made to hurt, in otherwise consistent shards."""
    cases: list[Case] = []
    shard, key = "train/train-000000", _keys("train/train-000000")[1]

    def replace(field, data):
        return lambda m: [(n, data if n == f"{key}.{field}" else d) for n, d in m]

    for what, data in HOSTILE_ARRAYS.items():
        for field, feature in (("face.npy", False), ("teacher.npy", True), ("units.npy", True)):
            cases.append((f"{what} as {field}", "dataset", lambda root, f=field, d=data,
                          side=feature: _with_member(root, shard, replace(f, d), side)))
    for name in HOSTILE_NAMES:
        cases.append((f"member named {name[:30]!r}", "dataset", lambda root, n=name:
                      _with_member(root, shard, lambda m: [*m[:3], (n, b"{}"), *m[3:]])))
    for kind, code in (("symlink", tarfile.SYMTYPE), ("hard link", tarfile.LNKTYPE),
                       ("directory", tarfile.DIRTYPE), ("fifo", tarfile.FIFOTYPE),
                       ("device", tarfile.CHRTYPE)):
        cases.append((f"{kind} member", "dataset", lambda root, c=code: _rewrite_shard(
            root, shard, tar_bytes([(f"{key}.json", b"")], {f"{key}.json": c}))))
    structural = {
        "key twice, apart": lambda m: m + m[:3],
        "field twice": lambda m: m[:3] + m[2:3] + m[3:],
        "field missing": lambda m: m[:2] + m[3:],
        "unknown field": lambda m: m[:3] + [(f"{key}.x.npy", b"")] + m[3:],
        "sample of json only": lambda m: m + [("fuzz-extra-x-0000.json", m[2][1])],
        "no members": lambda m: [],
        "members reordered": lambda m: m[::-1],
        "json too large": replace("json", b" " * (5 << 20)),
        "json not utf-8": replace("json", b"\xff\xfe\x00"),
        "json not json": replace("json", b"{'key': 1}"),
        "json a list": replace("json", b"[1, 2]"),
        "json nested deep": replace("json", b"[" * 200_000),
        "json NaN duration": lambda m: _json_edit(m, key, duration=float("nan")),
        "json fps 0": lambda m: _json_edit(m, key, fps=0),
        "json fps tiny": lambda m: _json_edit(m, key, fps=1e-300, num_frames=1,
                                              duration=1e300),
        "json other fps": lambda m: _json_edit(m, key, fps=30.0, duration=FRAMES / 30.0),
        "json other key": lambda m: _json_edit(m, key, key="someone-else-0000"),
        "json other split": lambda m: _json_edit(m, key, split="test"),
        "json huge number": lambda m: _json_edit(m, key, rms_db=10**400),
        "json words backwards": lambda m: _json_edit(m, key, words=[
            {"word": "a", "start": 0.5, "end": 0.1}]),
        "json unknown key": lambda m: _json_edit(m, key, extra="x"),
        "json missing key": lambda m: _json_edit(m, key, drop="asr"),
        "json wrong types": lambda m: _json_edit(m, key, num_frames="25", speaker=3),
        "flac not flac": replace("flac", b"RIFF....WAVEfmt "),
        "flac garbage after magic": replace("flac", b"fLaC" + bytes(200)),
        "flac of other rate": replace("flac", flac_bytes(np.zeros(8000, np.float32), 8000)),
        "flac too short": replace("flac", flac_bytes(np.zeros(800, np.float32))),
        "flac stereo": replace("flac", _stereo_flac()),
    }
    for what, change in structural.items():
        cases.append((what, "dataset", lambda root, c=change: _with_member(root, shard, c)))
    cases.append(("gzip-compressed tar", "dataset", lambda root: _rewrite_shard(
        root, shard, gzip.compress(_file_of(root, shard).read_bytes()))))
    cases.append(("garbage after the end marker", "dataset", lambda root: _rewrite_shard(
        root, shard, _file_of(root, shard).read_bytes() + b"x" * 700)))
    cases.append(("empty file", "dataset", lambda root: _rewrite_shard(root, shard, b"")))
    cases.append(("shard file missing", "dataset", lambda root: _file_of(root, shard).unlink()))
    return cases + sidecar_cases()


def _json_edit(members: list, clip: str, drop: str | None = None, **values) -> list:
    out = []
    for name, data in members:
        if name == f"{clip}.json":
            meta = {**json.loads(data), **values}
            meta.pop(drop, None)
            data = json.dumps(meta).encode()
        out.append((name, data))
    return out


def _stereo_flac() -> bytes:
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.zeros((RATE, 2), np.float32), RATE, format="FLAC")
    return buffer.getvalue()


def sidecar_cases() -> list[Case]:
    """Sidecars out of step with their main shards, or holding what they must not."""
    shard = "train/train-000000"
    keys = _keys(shard)

    def side(change, new_keys=None):
        return lambda root: _with_member(root, shard, change, feature=True, keys=new_keys)

    def units(codes: np.ndarray):
        data = npy_bytes(codes.astype(np.int16))
        return lambda m: [(n, data if n == f"{keys[0]}.units.npy" else d) for n, d in m]

    return [
        ("sidecar one sample short", "dataset", side(lambda m: m[:-2], keys[:-1])),
        ("sidecar one sample short, record kept", "dataset", side(lambda m: m[:-2])),
        ("sidecar one sample long", "dataset", side(
            lambda m: m + [(f"{keys[-1]}x.{n.split('.', 1)[1]}", d) for n, d in m[-2:]],
            [*keys, f"{keys[-1]}x"])),
        ("sidecar keys reordered", "dataset", side(lambda m: m[2:4] + m[:2] + m[4:],
                                                   [keys[1], keys[0], keys[2]])),
        ("sidecar keys renamed", "dataset", side(
            lambda m: [(n.replace("spk0", "spkX"), d) for n, d in m],
            [k.replace("spk0", "spkX") for k in keys])),
        ("sidecar refused sample with fields", "dataset", side(
            lambda m: m[:2] + [(f"{keys[0]}.rejected.txt", b"too_short: x")] + m[2:])),
        ("sidecar refusal not utf-8", "dataset", side(
            lambda m: [(f"{keys[0]}.rejected.txt", b"\xff")] + m[2:])),
        ("sidecar field missing", "dataset", side(lambda m: m[1:])),
        ("codes out of range", "dataset", side(units(np.full(50, 16)))),
        ("negative codes", "dataset", side(units(np.full(50, -1)))),
        ("codes far too few frames", "dataset", side(units(np.zeros(5)))),
        ("sidecar file missing", "dataset", lambda root: _file_of(root, shard, True).unlink()),
        ("sidecar record missing", "dataset", lambda root: _edit_json(
            root / "features/feat/feature.json", lambda d: d["shards"].pop(shard))),
    ]


def _edit_json(path: Path, change: Callable[[dict], object]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


HOSTILE_VALUES = [None, True, False, -1, 0, 2**70, 1e308, float("nan"), "", "../../etc/passwd",
                  f"x::pipe:touch {PAYLOAD} #", "{a,b}", "${HOME}", [], {}, [1, "a"],
                  {"a": {"b": 1}}, "train/train-000000::pipe:touch PWNED", "train/../../x"]
RAW_JSON = [b"", b"\xff\xfe", b"[]", b"null", b"{", b"[" * 100_000, b'{"a":' * 50_000,
            b"1e999", b'"' + b"x" * 100 + b'"']


def _paths(data, prefix=()) -> list[tuple]:
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*prefix, index))
    return found


def _mutated(data, path: tuple, operation: str, value):
    data = copy.deepcopy(data)
    if not path:
        return value if operation == "replace" else [data]
    parent = data
    for step in path[:-1]:
        parent = parent[step]
    if operation == "delete" and isinstance(parent, dict):
        del parent[path[-1]]
    elif operation == "add" and isinstance(parent, dict):
        parent[f"unknown_{len(parent)}"] = value
    else:
        parent[path[-1]] = value
    return data


def json_cases(relative: str, target: str, count: int, rng: np.random.Generator
               ) -> list[Case]:
    """Random structural mutations of one JSON record, and raw hostile bytes in its place."""
    def write(data: bytes):
        return lambda root: (root / relative).write_bytes(data)

    def mutate(index: int):
        def apply(root):
            original = json.loads((root / relative).read_text())
            paths = _paths(original)
            path = paths[index % len(paths)]
            operation = ("replace", "delete", "add")[index % 3]
            value = HOSTILE_VALUES[(index // 3) % len(HOSTILE_VALUES)]
            (root / relative).write_text(json.dumps(_mutated(original, path, operation, value)))
        return apply

    cases = [(f"{relative}: hostile bytes", target, write(raw)) for raw in RAW_JSON]
    offsets = rng.integers(0, 1 << 30, count)
    return cases + [(f"{relative}: a value replaced, removed or added", target,
                     mutate(int(i))) for i in offsets]


def manifest_cases() -> list[Case]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def rows(change):
        def apply(root):
            table = pq.read_table(root / "manifest.parquet").to_pylist()
            result = change(table)
            if isinstance(result, bytes):
                (root / "manifest.parquet").write_bytes(result)
            else:
                pq.write_table(pa.Table.from_pylist(result) if result else pa.table({}),
                               root / "manifest.parquet")
        return apply

    def set_all(**values):
        return rows(lambda table: [{**row, **values} for row in table])

    return [(f"manifest: {what}", "dataset", change) for what, change in {
        "garbage": rows(lambda t: b"PAR1garbage"), "empty file": rows(lambda t: b""),
        "truncated": rows(lambda t: _parquet(t)[:-40]), "no rows": rows(lambda t: []),
        "shard runs a pipe": set_all(shard=f"train-000000.tar::pipe:touch {PAYLOAD} #"),
        "shard with braces": set_all(shard="train-{000000,000001}"),
        "shard traverses": set_all(shard="../../../etc/passwd"),
        "split traverses": set_all(split="../train"),
        "duration a string": set_all(duration="1.0"), "duration null": set_all(duration=None),
        "key an int": set_all(key=7), "column missing": rows(
            lambda t: [{k: v for k, v in r.items() if k != "text"} for r in t]),
        "keys duplicated": rows(lambda t: t + t), "other keys": set_all(key="nobody-0000"),
    }.items()]


def _parquet(rows) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    return buffer.getvalue()


def run_cases(rng: np.random.Generator) -> list[Case]:
    weights = "step_000001/model.safetensors"

    def weights_change(change):
        def apply(root):
            path = root / weights
            path.write_bytes(change(path.read_bytes()))
        return apply

    def flip(where: float, header: bool):
        def change(data: bytes) -> bytes:
            data = bytearray(data)
            end = 8 + int.from_bytes(data[:8], "little")
            data[int(where * end) if header else end + int(where * (len(data) - end))] ^= 0x10
            return bytes(data)
        return change

    def other_model(**args):
        def apply(root):
            import torch

            from unitaf_model.model.unitaf import UniTAF
            from unitaf_model.run import save_weights

            model = UniTAF(**{"backbone": "units", "backbone_size": 16, "teacher_dim": 8,
                              "face_type": "arkit51", "channels": len(CHANNELS),
                              "template": torch.zeros(len(CHANNELS)), **args})
            save_weights(model.state_dict(), root / weights)
        return apply

    cases = [("weights truncated", "run", weights_change(
        lambda d, f=float(f): d[: int(f * len(d))])) for f in rng.uniform(0, 1, 30)]
    cases += [("bit flip in the weights' header", "run", weights_change(flip(float(w), True)))
              for w in rng.uniform(0, 1, 30)]
    cases += [("bit flip in the weights' data", "run", weights_change(flip(float(w), False)))
              for w in rng.uniform(0, 1, 10)]
    cases += [
        ("weights garbage", "run", weights_change(lambda d: b"\x00" * 64)),
        ("weights header huge", "run", weights_change(lambda d: (2**62).to_bytes(8, "little")
                                                      + d[8:])),
        ("weights a pickle", "run", weights_change(lambda d: pickle.dumps(_Evil()))),
        ("weights of another width", "run", other_model(teacher_dim=9)),
        ("weights of another vocabulary", "run", other_model(backbone_size=17)),
        ("weights missing", "run", lambda root: (root / weights).unlink()),
        ("no checkpoint", "run", lambda root: shutil.rmtree(root / "step_000001")),
        ("best without best.json", "run", lambda root: shutil.copytree(
            root / "step_000001", root / "best")),
        ("best.json hostile", "run", lambda root: (shutil.copytree(
            root / "step_000001", root / "best"), (root / "best/best.json").write_text(
            '{"step": "x"}'))),
        ("rig file garbage", "run", lambda root: (_edit_json(
            root / "model.json", lambda d: d.update(rig="rig.npz")), (
            root / "rig.npz").write_bytes(b"PK\x03\x04garbage"))),
        ("rig file missing", "run", lambda root: _edit_json(
            root / "model.json", lambda d: d.update(rig="rig.npz"))),
        ("front end garbage", "run", lambda root: (root / "front_end.safetensors").write_bytes(
            b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")),
        ("config.json missing", "run", lambda root: (root / "config.json").unlink()),
    ]
    return (cases + json_cases("model.json", "run", 150, rng)
            + json_cases("config.json", "run", 10, rng))


def all_cases() -> list[Case]:
    rng = np.random.default_rng(11)
    return (byte_cases(rng) + crafted_cases() + manifest_cases()
            + json_cases("unitaf.json", "dataset", 150, rng)
            + json_cases("features/feat/feature.json", "dataset", 100, rng)
            + [("shard file named to run a command", "dataset", lambda root: (
                root / "data" / "train" / f"train-000000.tar::pipe:touch {PAYLOAD} #.tar"
            ).write_bytes(b"")), *run_cases(rng)])


# --- the readers ----------------------------------------------------------------------------


class Hang(BaseException):
    """Raised by the alarm when a reader takes too long (a BaseException: no reader code
    catches it)."""


def _alarm(signum, frame):
    raise Hang


def _read_samples(root: Path, skips: Skips | None) -> str:
    dataset = Dataset.open_folder(root)
    count = 0
    for sample in dataset.samples(dataset.shards(), SETS, skips):
        try:
            sample.audio()
            count += 1
        except ShardError as error:
            if skips is None:
                raise
            skips.add(error)
    return f"skipped {skips.total}" if skips and skips.total else "ok"


def _check_sidecars(root: Path) -> str:
    dataset = Dataset.open_folder(root)
    dataset.check_sidecars(SETS, dataset.splits)
    return "ok"


def _sample_by_key(root: Path) -> str:
    dataset = Dataset.open_folder(root)
    rows = dataset.manifest()
    if rows:
        dataset.sample(rows[0]["key"])
    return "ok"


def _load_run(root: Path) -> str:
    from unitaf_model.run import load_run

    load_run(root, "best" if (root / "best").exists() else "last")
    return "ok"


READERS: dict[str, tuple[str, Callable[[Path], str], tuple[type[BaseException], ...]]] = {
    "Dataset.open_folder": ("dataset",
                            lambda root: (Dataset.open_folder(root).feature_sets(), "ok")[1],
                            (RecordError, FileNotFoundError)),
    "manifest()": ("dataset", lambda root: (Dataset.open_folder(root).manifest(), "ok")[1],
                   (RecordError, FileNotFoundError)),
    "check_sidecars": ("dataset", _check_sidecars, (ValueError, FileNotFoundError)),
    "samples": ("dataset", lambda root: _read_samples(root, None),
                (ShardError, RecordError, FileNotFoundError)),
    "samples + Skips": ("dataset", lambda root: _read_samples(root, Skips()),
                        (RecordError, FileNotFoundError)),
    "sample(key)": ("dataset", _sample_by_key, (ShardError, RecordError, KeyError,
                                                FileNotFoundError)),
    "load_run": ("run", _load_run, (RecordError, FileNotFoundError)),
}


DETECTING = ("samples", "samples + Skips", "load_run")  # readers that read all of it


def outcome(read: Callable[[Path], str], root: Path, allowed) -> str:
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT)
    try:
        return read(root)
    except Hang:
        return "HANG"
    except allowed as error:
        return type(error).__name__
    except Exception as error:  # what the test is looking for: reported, then it fails
        return f"UNEXPECTED {type(error).__name__}: {str(error)[:160]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _state(folder: Path) -> set[tuple[str, int, int]]:
    return {(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")
            if p.is_file()}


# --- the test -------------------------------------------------------------------------------


def test_every_reader_gives_its_error_or_a_counted_skip_for_a_thousand_corrupted_inputs(
        tmp_path, monkeypatch):
    pristine = {"dataset": tmp_path / "pristine" / "dataset", "run": tmp_path / "pristine" / "run"}
    build_dataset(pristine["dataset"])
    build_run(pristine["run"])
    for target, root in pristine.items():  # the pristine copies read cleanly
        for name, (kind, read, allowed) in READERS.items():
            if kind == target:
                assert outcome(read, root, allowed) == "ok", name
    work, scratch = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    scratch.mkdir()
    monkeypatch.chdir(work)  # where a `pipe:touch PWNED` would write
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    cases = all_cases()
    assert len(cases) >= 1000
    counts: Counter = Counter()
    failures = []
    for index, (kind, target, mutate) in enumerate(cases):
        root = work / f"case{index}"
        shutil.copytree(pristine[target], root)
        mutate(root)
        before = _state(work) | _state(scratch)
        for name, (reader_target, read, allowed) in READERS.items():
            if reader_target != target:
                continue
            result = outcome(read, root, allowed)
            counts[name, result.split(":")[0] if result.startswith("UNEXPECTED")
                   else result.split()[0]] += 1
            if result.startswith(("UNEXPECTED", "HANG")) or (
                    name == "samples + Skips" and result == "ShardError"):
                failures.append(f"{kind} → {name}: {result}")
            if name in DETECTING and result == "ok" and must_detect(kind):
                failures.append(f"{kind} → {name}: passed undetected")
        if _state(work) | _state(scratch) != before or (work / PAYLOAD).exists():
            failures.append(f"{kind}: the readers changed files on disk")
        shutil.rmtree(root)
    print(f"\n{len(cases)} corrupted inputs ({sum(t == 'dataset' for _, t, _ in cases)} "
          f"datasets, {sum(t == 'run' for _, t, _ in cases)} runs):")
    for (reader, result), count in sorted(counts.items()):
        print(f"  {reader:16s} {result:24s} {count}")
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:40])
    detecting = sum(must_detect(kind) for kind, _, _ in cases)
    print(f"  {detecting} of them must be (and were) detected by samples, samples + Skips "
          "and load_run")
    assert detecting >= 500


def test_damage_that_cannot_be_seen_without_the_records_is_still_caught(tmp_path):
    """The cases the old reader passed silently: a truncation at a sample boundary, a flipped
    header byte (records updated as an attacker would), and a pickle in a `.npy`."""
    build_dataset(tmp_path / "d")
    shard = "train/train-000000"
    offsets = _member_offsets(_file_of(tmp_path / "d", shard).read_bytes())
    cases = {
        "cut at a sample boundary": lambda root: _rewrite_shard(
            root, shard, _file_of(root, shard).read_bytes()[: offsets[3][0]]),
        "flipped header byte": lambda root: _rewrite_shard(root, shard, bytes(
            b ^ 0xFF if i == offsets[4][0] + 5 else b
            for i, b in enumerate(_file_of(root, shard).read_bytes()))),
        "pickled face": lambda root: _with_member(root, shard, lambda m: [
            (n, pickle.dumps(_Evil()) if n.endswith("face.npy") else d) for n, d in m]),
    }
    for what, damage in cases.items():
        root = tmp_path / what.replace(" ", "_")
        shutil.copytree(tmp_path / "d", root)
        damage(root)
        dataset = Dataset.open_folder(root)
        with pytest.raises(ShardError, match=f"^{shard}") as raised:
            list(dataset.samples(dataset.shards("train"), SETS))
        skips = Skips()
        assert len(list(dataset.samples(dataset.shards(), SETS, skips))) < 4, what
        assert skips.total >= 1, what
        print(f"{what}: {raised.value}")


def test_extract_features_skip_bad_refuses_a_bad_clip_and_keeps_the_sidecar_in_step(tmp_path):
    from unitaf_data.extract import extract_shard
    from unitaf_data.features import ExtractSettings, make_backend
    from unitaf_data.reader import tar_samples

    root = tmp_path / "d"
    build_dataset(root)
    shard = "train/train-000000"
    bad = _keys(shard)[1]
    _with_member(root, shard, lambda m: _json_edit(m, bad, fps=0))
    dataset = Dataset.open_folder(root)
    ref = dataset.shards("train")[0]
    backend = make_backend("offline", ["whisper"], ExtractSettings(dataset_dir=root))
    with pytest.raises(ShardError, match=f"key {bad}, field json"):
        extract_shard(backend, ["whisper"], dataset, ref, 60.0)
    report = extract_shard(backend, ["whisper"], dataset, ref, 60.0, skip_bad=True)["whisper"]
    assert [r.where for r in report.refused] == [bad]
    assert report.refused[0].reason == "bad_sample" and "fps" in report.refused[0].detail
    written = list(tar_samples(dataset.layout.sidecar("whisper", ref), "sidecar",
                               {"teacher.npy", "rejected.txt"}, report.record))
    assert [key for key, _ in written] == _keys(shard)
    assert set(written[1][1]) == {"rejected.txt"} and set(written[0][1]) == {"teacher.npy"}
    assert math.isclose(report.audio_seconds, 2.0)
