"""Live Link Face streaming, received on 127.0.0.1 and decoded by a decoder written here from
the protocol's description (it shares no constant with the sender)."""

from __future__ import annotations

import socket
import struct
import threading
import time

import numpy as np
import pytest

from unitaf_data.face import ARKIT51_UNITALKER
from unitaf_model.outputs.livelink import stream_face

# Apple's ARFaceAnchor blendshape order as the Live Link Face app sends it, spelled out here
# from the protocol description (pylivelinkface's FaceBlendShape enum), then the rotations
APP_ORDER = [
    "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft",
    "EyeSquintLeft", "EyeWideLeft", "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight",
    "EyeLookOutRight", "EyeLookUpRight", "EyeSquintRight", "EyeWideRight", "JawForward",
    "JawLeft", "JawRight", "JawOpen", "MouthClose", "MouthFunnel", "MouthPucker", "MouthLeft",
    "MouthRight", "MouthSmileLeft", "MouthSmileRight", "MouthFrownLeft", "MouthFrownRight",
    "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft", "MouthStretchRight",
    "MouthRollLower", "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper", "MouthPressLeft",
    "MouthPressRight", "MouthLowerDownLeft", "MouthLowerDownRight", "MouthUpperUpLeft",
    "MouthUpperUpRight", "BrowDownLeft", "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft",
    "BrowOuterUpRight", "CheekPuff", "CheekSquintLeft", "CheekSquintRight", "NoseSneerLeft",
    "NoseSneerRight", "TongueOut", "HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw",
    "LeftEyePitch", "LeftEyeRoll", "RightEyeYaw", "RightEyePitch", "RightEyeRoll"
]


def decode(packet: bytes) -> dict:
    """One Live Link Face datagram, field by field."""
    version = struct.unpack("<I", packet[:4])[0]
    device = packet[4:41].decode("utf-8")
    (length,) = struct.unpack(">i", packet[41:45])
    subject = packet[45 : 45 + length].decode("utf-8")
    at = 45 + length
    frame, sub, numerator, denominator = struct.unpack(">ifii", packet[at : at + 16])
    (count,) = struct.unpack(">B", packet[at + 16 : at + 17])
    values = struct.unpack(f">{count}f", packet[at + 17 :])
    return {"version": version, "device": device, "subject": subject, "frame": frame,
            "sub": sub, "rate": numerator / denominator, "count": count,
            "values": dict(zip(APP_ORDER, values, strict=True))}


def receive(sock: socket.socket, expected: int, into: list) -> None:
    sock.settimeout(10)
    while len(into) < expected:
        packet = sock.recv(2048)
        into.append((time.perf_counter(), packet))


@pytest.fixture
def receiver():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


def test_every_frame_arrives_in_order_on_time_with_the_npy_values(receiver):
    fps, frames = 30.0, 45
    rng = np.random.default_rng(0)
    face = rng.uniform(-0.2, 1.2, (frames, 51)).astype(np.float32)
    got: list = []
    thread = threading.Thread(target=receive, args=(receiver, frames, got))
    thread.start()
    port = receiver.getsockname()[1]
    chunks = [face[:20], face[20:]]  # two segments, one stream
    sent = stream_face(f"127.0.0.1:{port}", chunks, ARKIT51_UNITALKER, fps, subject="Anna")
    thread.join()
    assert sent == frames and len(got) == frames
    packets = [decode(p) for _, p in got]
    assert [p["frame"] for p in packets] == list(range(frames))
    assert {p["version"] for p in packets} == {6} and {p["count"] for p in packets} == {61}
    assert {p["subject"] for p in packets} == {"Anna"} and len({p["device"] for p in packets}) == 1
    assert all(p["rate"] == fps for p in packets)
    expected = np.clip(face, 0, 1)
    for k, packet in enumerate(packets):
        values = packet["values"]
        for c, name in enumerate(ARKIT51_UNITALKER):
            assert values[name] == pytest.approx(float(expected[k, c]), abs=1e-7)
        assert values["TongueOut"] == 0 and values["HeadYaw"] == 0
    times = np.array([t for t, _ in got]) - got[0][0]
    assert np.abs(times - np.arange(frames) / fps).max() < 1 / fps  # within a frame


def test_a_bad_address_is_refused_with_the_form_it_wants():
    with pytest.raises(ValueError, match="HOST:PORT"):
        stream_face("localhost", [np.zeros((1, 51), np.float32)], ARKIT51_UNITALKER, 30.0)
