"""A Live Link Face receiver for the tests: a UDP socket on 127.0.0.1 and a decoder written
from the protocol's description (it shares no constant with the sender in
`unitaf_model.outputs.livelink`)."""

from __future__ import annotations

import socket
import struct
import threading
import time

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux's value

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


def receive(sock: socket.socket, expected: int, into: list, timeout: float = 10.0) -> None:
    """(arrival, datagram) pairs; the arrival is the kernel's receive time (SO_TIMESTAMPNS),
    so a busy test process does not delay it."""
    sock.settimeout(timeout)
    while len(into) < expected:
        packet, ancillary, _, _ = sock.recvmsg(2048, socket.CMSG_SPACE(16))
        stamp = next((data for level, kind, data in ancillary
                      if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS), None)
        seconds, nanoseconds = struct.unpack("qq", stamp) if stamp else (0, 0)
        into.append((seconds + nanoseconds * 1e-9 if stamp else time.time(), packet))


class Receiver:
    """Collects (arrival time, datagram) on 127.0.0.1 until `expected` have come."""

    def __init__(self):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.socket.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.got: list = []
        self.thread: threading.Thread | None = None

    def start(self, expected: int, timeout: float = 10.0) -> None:
        """Receive in the background until `expected` datagrams in all (each within
        `timeout` seconds of the last)."""
        self.thread = threading.Thread(target=receive,
                                       args=(self.socket, expected, self.got, timeout))
        self.thread.start()

    def join(self) -> list[dict]:
        self.thread.join()
        return [decode(packet) for _, packet in self.got]

    def close(self) -> None:
        self.socket.close()
