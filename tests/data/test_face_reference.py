"""The built-in ARKit-51 order against the real UniTalker reference (when ../shared exists)."""

import pytest

from reference import SHARED_REASON, SHARED_REFERENCE
from unitaf_data.face import ARKIT51_UNITALKER, channel_index


@pytest.mark.skipif(not SHARED_REFERENCE.exists(), reason=SHARED_REASON.format(name=""))
def test_arkit_channels_follow_unitalker_order():
    names = (SHARED_REFERENCE / "unitalker_arkit_names.txt").read_text().split()
    assert tuple(names) == ARKIT51_UNITALKER


def test_mouth_channels_are_where_unitalker_puts_them():
    assert channel_index(ARKIT51_UNITALKER, "JawOpen") == 19
    assert channel_index(ARKIT51_UNITALKER, "MouthClose") == 20
    with pytest.raises(KeyError):
        channel_index(ARKIT51_UNITALKER, "jawOpen")
