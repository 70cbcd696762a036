"""Live Link Face streaming, received on 127.0.0.1 and decoded by `livelink_receiver`'s
decoder, written from the protocol's description (it shares no constant with the sender)."""

from __future__ import annotations

import numpy as np
import pytest
from livelink_receiver import Receiver

from unitaf_data.face import ARKIT51_UNITALKER
from unitaf_model.outputs.livelink import stream_face


@pytest.fixture
def receiver():
    listening = Receiver()
    yield listening
    listening.close()


def test_every_frame_arrives_in_order_on_time_with_the_npy_values(receiver):
    fps, frames = 30.0, 45
    rng = np.random.default_rng(0)
    face = rng.uniform(-0.2, 1.2, (frames, 51)).astype(np.float32)
    receiver.start(frames)
    chunks = [face[:20], face[20:]]  # two segments, one stream
    sent = stream_face(f"127.0.0.1:{receiver.port}", chunks, ARKIT51_UNITALKER, fps,
                       subject="Anna")
    packets = receiver.join()
    got = receiver.got
    assert sent == frames and len(got) == frames
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
    late = np.array([t for t, _ in got]) - got[0][0] - np.arange(frames) / fps
    assert late.min() > -1e-3  # never early
    # within a frame of its time; the quantile leaves room for a sleep that wakes late on a
    # machine with many more busy processes than cores (the next frames then catch up)
    assert np.quantile(late, 0.9) < 1 / fps and late[-1] < 1 / fps


def test_a_bad_address_is_refused_with_the_form_it_wants():
    with pytest.raises(ValueError, match="HOST:PORT"):
        stream_face("localhost", [np.zeros((1, 51), np.float32)], ARKIT51_UNITALKER, 30.0)
