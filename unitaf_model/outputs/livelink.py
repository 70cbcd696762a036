"""Live streaming of a face to Unreal Engine (or any Live Link Face receiver) over UDP, as the
Live Link Face iPhone app sends it, in real time.

One datagram per frame, the layout the app uses (as decoded by JimWest/PyLiveLinkFace
`pylivelinkface.py`, commit 28804bdf, which Unreal's Live Link Face source reads the same way):

| field | encoding |
|---|---|
| version | uint32, little-endian: 6 |
| device id | 37 bytes UTF-8 (`$` and a UUID) |
| subject name | int32 big-endian length, then UTF-8 bytes |
| frame time | frame number int32, sub-frame float32 (big-endian) |
| frame rate | numerator int32, denominator int32 (big-endian) |
| values | count uint8 (61), then 61 float32 big-endian |

The 61 values are the 52 ARKit blendshapes in the app's (Apple's `ARFaceAnchor`
blendshape enum) order, `LIVE_LINK_FACE_ORDER` (EyeBlinkLeft ... TongueOut; note JawLeft
before JawRight and MouthLeft before MouthRight, unlike the header of the app's CSV takes,
`exports.LIVE_LINK_BLENDSHAPES`), then head yaw, pitch, roll and the left and right eyes' yaw,
pitch, roll. Channels are matched by name (case-insensitively); values are clipped to [0, 1];
TongueOut and the rotations are 0. Frame n of a stream is sent at `start + n / fps` (the
sender sleeps until then, or sends at once when a segment arrives late) and carries frame
number n at the face's rate.
"""

from __future__ import annotations

import logging
import socket
import struct
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from unitaf_model.model.rig import match_channels

log = logging.getLogger(__name__)

LIVE_LINK_FACE_ORDER: tuple[str, ...] = (
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
    "NoseSneerRight", "TongueOut",
)  # fmt: skip
ROTATIONS = 9  # head yaw, pitch, roll; left eye yaw, pitch, roll; right eye yaw, pitch, roll
VERSION = 6
DEFAULT_PORT = 11111  # where Unreal's Live Link Face source listens by default


def parse_address(address: str) -> tuple[str, int]:
    """`HOST:PORT` → (host, port), with a clear error for anything else."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--livelink wants HOST:PORT (e.g. 127.0.0.1:{DEFAULT_PORT}), not "
                         f"{address!r}")
    return host.strip("[]"), int(port)


def frame_rate(fps: float) -> tuple[int, int]:
    """(numerator, denominator) of a frame rate (29.97 → 30000/1001)."""
    if not fps > 0:
        raise ValueError(f"fps must be positive, not {fps}")
    rate = Fraction(fps).limit_denominator(1001)
    return rate.numerator, rate.denominator


def encode_packet(device_id: str, subject: str, frame: int, fps: float,
                  values: np.ndarray) -> bytes:
    """One Live Link Face datagram: `values` are the 61 floats in the app's order."""
    device = device_id.encode("utf-8")
    if len(device) != 37:
        raise ValueError(f"the device id must be 37 bytes of UTF-8, not {len(device)}")
    name = subject.encode("utf-8")
    values = np.asarray(values, ">f4")
    if values.shape != (len(LIVE_LINK_FACE_ORDER) + ROTATIONS,):
        raise ValueError(f"a packet holds {len(LIVE_LINK_FACE_ORDER) + ROTATIONS} values, "
                         f"not {values.shape}")
    numerator, denominator = frame_rate(fps)
    return b"".join([struct.pack("<I", VERSION), device, struct.pack(">i", len(name)), name,
                     struct.pack(">ifii", frame, 0.0, numerator, denominator),
                     struct.pack(">B", len(values)), values.tobytes()])


def packet_values(face: np.ndarray, channels: Sequence[str]) -> np.ndarray:
    """(T, 61) float32: the face's channels in the app's order, clipped to [0, 1], then zero
    rotations."""
    shapes = np.clip(match_channels(face, channels, LIVE_LINK_FACE_ORDER), 0, 1)
    return np.concatenate([shapes, np.zeros((len(shapes), ROTATIONS), np.float32)], 1)


@dataclass
class LiveLinkSender:
    """Sends a face's frames to `host:port` in real time, chunk after chunk, as one stream:
    frame n leaves at the first frame's time + n / fps."""

    host: str
    port: int
    fps: float
    subject: str = "unitaf"
    device_id: str = field(default_factory=lambda: "$" + str(uuid.uuid4()))
    sent: int = 0
    late: int = 0  # frames that left more than a frame after their time (a slow segment)

    def __post_init__(self) -> None:
        frame_rate(self.fps)
        if not self.subject:
            raise ValueError("the Live Link subject name must not be empty")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_DGRAM)
        self.start: float | None = None

    def send(self, face: np.ndarray, channels: Sequence[str]) -> int:
        """Send a chunk of (T, C) frames, each at its time; the number sent."""
        for values in packet_values(face, channels):
            if self.start is None:
                self.start = time.perf_counter()
            due = self.start + self.sent / self.fps
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            elif -wait > 1 / self.fps:
                self.late += 1
            packet = encode_packet(self.device_id, self.subject, self.sent, self.fps, values)
            self.socket.sendto(packet, (self.host, self.port))
            self.sent += 1
        return len(face)

    def close(self) -> None:
        self.socket.close()
        if self.late:
            log.warning("%d of %d Live Link frames left more than a frame late", self.late,
                        self.sent)

    def __enter__(self) -> LiveLinkSender:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def stream_face(address: str, chunks: Iterable[np.ndarray], channels: Sequence[str],
                fps: float, subject: str = "unitaf", audio=None) -> int:
    """Send face chunks as they come (a whole face is one chunk) to `HOST:PORT` in real time,
    playing `(samples, sample_rate)` audio alongside where a sound device is found; the
    number of frames sent."""
    host, port = parse_address(address)
    with LiveLinkSender(host, port, fps, subject) as sender:
        player = _play(audio)
        try:
            for chunk in chunks:
                sender.send(chunk, channels)
        finally:
            if player is not None:
                player.wait()
        log.info("sent %d Live Link frames to %s:%d as subject %r", sender.sent, host, port,
                 subject)
        return sender.sent


def _play(audio):
    """Start playing `(samples, rate)` with `sounddevice` where it is installed and finds an
    output device; None (and a note) otherwise: the audio is in the written files."""
    if audio is None:
        return None
    try:
        import sounddevice

        sounddevice.play(np.asarray(audio[0], np.float32), audio[1])
        return sounddevice
    except Exception as error:  # no package, no PortAudio, no device: all mean "not here"
        log.info("audio not played (%s): it is in the written .wav / input file", error)
        return None


class LiveLinkStream:
    """A `LiveLinkSender` on its own thread: `put(chunk)` returns at once, so the next segment
    is synthesised while this one streams; leaving the `with` waits until all are sent."""

    def __init__(self, address: str, channels: Sequence[str], fps: float,
                 subject: str = "unitaf"):
        import queue
        import threading

        host, port = parse_address(address)
        self.sender = LiveLinkSender(host, port, fps, subject)
        self.channels = channels
        self.queue: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (chunk := self.queue.get()) is not None:
            try:
                self.sender.send(chunk, self.channels)
            except BaseException as error:  # reported by the caller's thread on exit
                self.error = error

    def put(self, chunk: np.ndarray) -> None:
        self.queue.put(np.asarray(chunk))

    def __enter__(self) -> LiveLinkStream:
        return self

    def __exit__(self, *exc) -> None:
        self.queue.put(None)
        self.thread.join()
        self.sender.close()
        if self.error is not None:
            raise RuntimeError(f"Live Link streaming failed: {self.error}") from self.error
