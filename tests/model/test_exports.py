"""Face exports read back by independent parsers: csv/json modules, pyarrow, pygltflib, and
the glb's bytes taken apart by hand."""

from __future__ import annotations

import csv
import json
import struct

import numpy as np
import pyarrow.csv as pacsv
import pytest

from reference import SHARED_REFERENCE, needs_shared
from unitaf_data.face_io import read_face
from unitaf_model.model.rig import demo_rig, load_rig, match_channels
from unitaf_model.outputs.exports import (
    FILE_FORMATS,
    live_link_timecode,
    write_a2f_json,
    write_csv,
    write_exports,
    write_glb,
    write_live_link_csv,
)

RIG_FILE = SHARED_REFERENCE / "unitalker_arkit_rig.npz"
# The Live Link Face app's header, as nmfisher/blender_livelinkface spells it (commit 08de037).
LIVE_LINK_HEADER_LINE = (
    "Timecode,BlendShapeCount,EyeBlinkLeft,EyeLookDownLeft,EyeLookInLeft,EyeLookOutLeft,"
    "EyeLookUpLeft,EyeSquintLeft,EyeWideLeft,EyeBlinkRight,EyeLookDownRight,EyeLookInRight,"
    "EyeLookOutRight,EyeLookUpRight,EyeSquintRight,EyeWideRight,JawForward,JawRight,JawLeft,"
    "JawOpen,MouthClose,MouthFunnel,MouthPucker,MouthRight,MouthLeft,MouthSmileLeft,"
    "MouthSmileRight,MouthFrownLeft,MouthFrownRight,MouthDimpleLeft,MouthDimpleRight,"
    "MouthStretchLeft,MouthStretchRight,MouthRollLower,MouthRollUpper,MouthShrugLower,"
    "MouthShrugUpper,MouthPressLeft,MouthPressRight,MouthLowerDownLeft,MouthLowerDownRight,"
    "MouthUpperUpLeft,MouthUpperUpRight,BrowDownLeft,BrowDownRight,BrowInnerUp,BrowOuterUpLeft,"
    "BrowOuterUpRight,CheekPuff,CheekSquintLeft,CheekSquintRight,NoseSneerLeft,NoseSneerRight,"
    "TongueOut,HeadYaw,HeadPitch,HeadRoll,LeftEyeYaw,LeftEyePitch,LeftEyeRoll,RightEyeYaw,"
    "RightEyePitch,RightEyeRoll"
)


def shuffled_face(frames: int = 40, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Random ARKit curves in [0, 1] whose channels are in a shuffled order, as a corpus with
    another order would give them."""
    rng = np.random.default_rng(seed)
    names = list(demo_rig().channels)
    rng.shuffle(names)
    return rng.uniform(0, 1, (frames, len(names))).astype(np.float32), names


def by_name(face: np.ndarray, names: list[str], wanted: str) -> np.ndarray:
    return face[:, [n.lower() for n in names].index(wanted.lower())]


def seconds_of(timecode: str, rate: int) -> float:
    hours, minutes, seconds, rest = timecode.split(":")
    frames, millis = rest.split(".")
    return (int(hours) * 3600 + int(minutes) * 60 + int(seconds) + int(frames) / rate
            + int(millis) / 1000)


def test_channels_are_matched_by_name_whatever_their_order_or_case():
    face = np.array([[0.1, 0.2, 0.3]], np.float32)
    out = match_channels(face, ["JawOpen", "mouthClose", "Extra"], ["MouthClose", "JawOpen", "X"])
    np.testing.assert_array_equal(out, np.array([[0.2, 0.1, 0.0]], np.float32))
    with pytest.raises(ValueError, match="no face channel"):
        match_channels(face, ["a", "b", "c"], ["JawOpen"])
    with pytest.raises(ValueError, match="repeat"):
        match_channels(face, ["JawOpen", "jawopen", "c"], ["JawOpen"])


def test_csv_reads_back_through_read_face_and_pyarrow_with_a_time_column(tmp_path):
    face, names = shuffled_face()
    path = write_csv(tmp_path / "clip.csv", face, names, fps=25.0)
    back, back_names = read_face(path, None)
    assert back_names == names
    np.testing.assert_allclose(back, face, atol=1e-6)
    table = pacsv.read_csv(path)
    assert table.column_names == ["time", *names]
    np.testing.assert_allclose(table.column("time").to_numpy(), np.arange(40) / 25.0, atol=1e-6)
    with open(path, newline="") as file:
        rows = list(csv.reader(file))
    assert len(rows) == 41 and all(len(row) == 52 for row in rows)


def test_live_link_csv_has_the_app_header_and_every_arkit_curve_by_name(tmp_path):
    face, names = shuffled_face()
    names = [n[0].lower() + n[1:] if i % 2 else n for i, n in enumerate(names)]  # mixed case
    path = write_live_link_csv(tmp_path / "clip.livelink.csv", face, names, fps=25.0)
    assert path.read_text().splitlines()[0] == LIVE_LINK_HEADER_LINE
    with open(path, newline="") as file:
        rows = list(csv.reader(file))
    assert len(rows) == 41 and all(len(row) == 63 and row[1] == "61" for row in rows[1:])
    values = np.array([[float(v) for v in row[2:]] for row in rows[1:]])
    for column, header in enumerate(rows[0][2:]):
        if header == "TongueOut" or column >= 52:
            np.testing.assert_array_equal(values[:, column], 0.0)
        else:
            np.testing.assert_allclose(values[:, column], by_name(face, names, header), atol=1e-6)
    times = [seconds_of(row[0], 25) for row in rows[1:]]
    np.testing.assert_allclose(times, np.arange(40) / 25.0, atol=1e-9)


def test_live_link_csv_clips_weights_to_the_unit_range_and_needs_arkit_channels(tmp_path):
    face = np.array([[1.3, -0.2]], np.float32)
    path = write_live_link_csv(tmp_path / "a.csv", face, ["JawOpen", "MouthClose"], fps=30)
    with open(path, newline="") as file:
        row = next(csv.DictReader(file))
    assert (float(row["JawOpen"]), float(row["MouthClose"])) == (1.0, 0.0)
    with pytest.raises(ValueError, match="no face channel"):
        write_live_link_csv(tmp_path / "b.csv", face, ["expression_000", "jaw_x"], fps=30)


@pytest.mark.parametrize("frame, fps, expected", [
    (0, 25, "00:00:00:00.000"),
    (37, 25, "00:00:01:12.000"),
    (25 * 3661 + 3, 25, "01:01:01:03.000"),
    (59, 60, "00:00:00:59.000"),
    (1, 24.5, "00:00:00:00.041"),  # 40.8 ms: frame 0 of the 24-frame timecode, 41 ms into it
])
def test_live_link_timecodes_count_frames_then_milliseconds(frame, fps, expected):
    assert live_link_timecode(frame, fps) == expected


@pytest.mark.parametrize("fps", [24.5, 29.97, 30.0, 59.94])
def test_live_link_timecodes_give_back_each_frame_start_within_half_a_millisecond(fps):
    rate = round(fps)
    times = [seconds_of(live_link_timecode(i, fps), rate) for i in range(0, 5000, 7)]
    np.testing.assert_allclose(times, np.arange(0, 5000, 7) / fps, atol=5e-4)


def test_a2f_json_has_the_audio2face_layout_with_camel_case_arkit_names(tmp_path):
    face, names = shuffled_face()
    face[0, 0], face[0, 1] = 1.5, -0.5
    path = write_a2f_json(tmp_path / "clip.a2f.json", face, [*names[:-1], "custom_shape"],
                          fps=30.0, track_path="clip.wav")
    document = json.loads(path.read_text())
    assert set(document) == {"exportFps", "trackPath", "numPoses", "numFrames", "facsNames",
                             "weightMat"}
    assert (document["exportFps"], document["trackPath"]) == (30.0, "clip.wav")
    assert (document["numFrames"], document["numPoses"]) == (40, 51)
    assert document["facsNames"][-1] == "custom_shape"
    assert "jawOpen" in document["facsNames"] and "eyeBlinkLeft" in document["facsNames"]
    weights = np.array(document["weightMat"])
    assert weights.shape == (40, 51)
    np.testing.assert_allclose(weights, np.clip(face, 0, 1), atol=1e-6)
    for k, name in enumerate(document["facsNames"][:-1]):
        assert name.lower() == names[k].lower() and name[0].islower()


def read_glb_by_hand(path) -> tuple[dict, bytes]:
    """(JSON, BIN) of a glb, straight from the 12-byte header and the two chunk headers."""
    data = path.read_bytes()
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    assert (magic, version, length) == (b"glTF", 2, len(data))
    json_length, json_type = struct.unpack_from("<I4s", data, 12)
    assert json_type == b"JSON" and json_length % 4 == 0
    bin_length, bin_type = struct.unpack_from("<I4s", data, 20 + json_length)
    assert bin_type == b"BIN\0" and 28 + json_length + bin_length == len(data)
    start = 28 + json_length
    return json.loads(data[20:20 + json_length]), data[start:start + bin_length]


def accessor_data(document: dict, blob: bytes, index: int) -> np.ndarray:
    accessor = document["accessors"][index]
    view = document["bufferViews"][accessor["bufferView"]]
    dtype = {5126: np.float32, 5125: np.uint32}[accessor["componentType"]]
    width = {"SCALAR": 1, "VEC3": 3}[accessor["type"]]
    start = view.get("byteOffset", 0) + accessor.get("byteOffset", 0)
    count = accessor["count"] * width
    return np.frombuffer(blob, dtype, count, start).reshape(accessor["count"], width)


def rigs():
    yield pytest.param(demo_rig(), id="demo")
    yield pytest.param(load_rig(RIG_FILE) if RIG_FILE.exists() else None, id="unitalker",
                       marks=needs_shared(RIG_FILE))


@pytest.mark.parametrize("rig", rigs())
def test_glb_taken_apart_by_hand_has_the_mesh_a_target_per_channel_and_the_curves(tmp_path,
                                                                                   rig):
    face, names = shuffled_face()
    path = write_glb(tmp_path / "clip.glb", face, names, 25.0, rig)
    document, blob = read_glb_by_hand(path)
    mesh = document["meshes"][0]
    primitive = mesh["primitives"][0]
    assert mesh["extras"]["targetNames"] == list(rig.channels)
    assert len(primitive["targets"]) == len(rig.channels) and mesh["weights"] == [0.0] * 51
    np.testing.assert_array_equal(accessor_data(document, blob, primitive["attributes"][
        "POSITION"]), rig.meanshape.astype(np.float32))
    np.testing.assert_array_equal(accessor_data(document, blob, primitive["indices"]).reshape(
        -1, 3), rig.faces)
    for k, target in enumerate(primitive["targets"]):
        np.testing.assert_array_equal(accessor_data(document, blob, target["POSITION"]),
                                      rig.blendshape[k].astype(np.float32))
    for accessor in [primitive["attributes"]["POSITION"], *(t["POSITION"] for t in
                                                            primitive["targets"])]:
        data, fields = accessor_data(document, blob, accessor), document["accessors"][accessor]
        np.testing.assert_array_equal(fields["min"], data.min(0))
        np.testing.assert_array_equal(fields["max"], data.max(0))
    (animation,) = document["animations"]
    (sampler,) = animation["samplers"]
    assert sampler["interpolation"] == "LINEAR"
    assert animation["channels"][0]["target"] == {"node": 0, "path": "weights"}
    assert document["nodes"][0]["mesh"] == 0
    times = accessor_data(document, blob, sampler["input"]).ravel()
    np.testing.assert_allclose(times, np.arange(40) / 25.0, rtol=1e-6)
    assert document["accessors"][sampler["input"]]["max"] == [float(times.max())]
    weights = accessor_data(document, blob, sampler["output"]).reshape(40, 51)
    for k, channel in enumerate(rig.channels):
        np.testing.assert_array_equal(weights[:, k], by_name(face, names, channel))


def test_glb_read_by_pygltflib_has_named_morph_targets_and_one_key_per_frame(tmp_path):
    pygltflib = pytest.importorskip("pygltflib")
    rig = demo_rig()
    face, names = shuffled_face(frames=12)
    path = write_glb(tmp_path / "clip.glb", face, names, 30.0, rig)
    gltf = pygltflib.GLTF2().load(str(path))
    mesh = gltf.meshes[0]
    assert mesh.extras["targetNames"] == list(rig.channels)
    primitive = mesh.primitives[0]
    assert len(primitive.targets) == 51
    assert gltf.accessors[primitive.attributes.POSITION].count == len(rig.meanshape)
    assert gltf.accessors[primitive.attributes.NORMAL].count == len(rig.meanshape)
    assert gltf.accessors[primitive.indices].count == rig.faces.size
    sampler = gltf.animations[0].samplers[0]
    assert gltf.accessors[sampler.input].count == 12
    assert gltf.accessors[sampler.output].count == 12 * 51
    output = gltf.accessors[sampler.output]
    view = gltf.bufferViews[output.bufferView]
    blob = gltf.binary_blob()
    weights = np.frombuffer(blob, np.float32, output.count, view.byteOffset).reshape(12, 51)
    np.testing.assert_array_equal(weights[:, rig.channels.index("JawOpen")],
                                  by_name(face, names, "JawOpen"))


def test_write_exports_writes_every_file_format_and_refuses_a_mesh_format_without_a_rig(
        tmp_path):
    face, names = shuffled_face(frames=10)
    paths = write_exports(tmp_path / "out", "clip", face, names, 25.0, rig=demo_rig())
    assert sorted(paths) == sorted(FILE_FORMATS)
    assert {p.name for p in (tmp_path / "out").iterdir()} == {f"clip.{f}" for f in FILE_FORMATS}
    np.testing.assert_array_equal(np.load(paths["npy"], allow_pickle=False), face)
    with pytest.raises(ValueError, match="rig"):
        write_exports(tmp_path / "other", "clip", face, names, 25.0)
    with pytest.raises(ValueError, match="plain file name"):
        write_exports(tmp_path / "out", "../clip", face, names, 25.0, formats=("csv",))
    with pytest.raises(ValueError, match="unknown export formats"):
        write_exports(tmp_path / "out", "clip", face, names, 25.0, formats=("fbx",))
