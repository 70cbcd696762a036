"""The USD export, read back with pxr: the rig's mesh, one blend shape per channel, the same
curves as the .npy."""

from __future__ import annotations

import numpy as np
import pytest

from unitaf_model.model.rig import demo_rig
from unitaf_model.outputs.exports import write_exports

pxr = pytest.importorskip("pxr")


def test_the_usd_reads_back_with_the_rig_and_the_npy_curves(tmp_path):
    from pxr import Usd, UsdGeom, UsdSkel

    rig = demo_rig()
    face = np.random.default_rng(0).uniform(0, 1, (12, 51)).astype(np.float32)
    order = np.random.default_rng(1).permutation(51)  # channels matched by name
    names = [rig.channels[i] for i in order]
    paths = write_exports(tmp_path, "clip", face[:, order], names, 25.0, rig=rig,
                          formats=("npy", "usd"))
    stage = Usd.Stage.Open(str(paths["usd"]))
    assert stage.GetTimeCodesPerSecond() == 25.0 and UsdGeom.GetStageUpAxis(stage) == "Y"
    animation = UsdSkel.Animation(stage.GetPrimAtPath("/Face/Skeleton/Animation"))
    assert list(animation.GetBlendShapesAttr().Get()) == list(rig.channels)
    weights = animation.GetBlendShapeWeightsAttr()
    assert weights.GetTimeSamples() == list(map(float, range(12)))
    saved = np.load(paths["npy"])
    for frame in range(12):
        np.testing.assert_array_equal(np.array(weights.Get(frame))[order], saved[frame])
    mesh = UsdGeom.Mesh(stage.GetPrimAtPath("/Face/Mesh"))
    np.testing.assert_array_equal(np.array(mesh.GetPointsAttr().Get()), rig.meanshape)
    binding = UsdSkel.BindingAPI(mesh.GetPrim())
    targets = binding.GetBlendShapeTargetsRel().GetTargets()
    assert [t.name for t in targets] == list(rig.channels)
    jaw = UsdSkel.BlendShape(stage.GetPrimAtPath(targets[rig.channels.index("JawOpen")]))
    np.testing.assert_array_equal(np.array(jaw.GetOffsetsAttr().Get()),
                                  rig.blendshape[rig.channels.index("JawOpen")])
    assert binding.GetSkeleton().GetPath() == "/Face/Skeleton"
    assert not list(tmp_path.glob("*.partial*"))
