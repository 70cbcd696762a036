"""USD export of a face: the rig's mesh with one UsdSkel blend shape per channel and the face
as a UsdSkel animation of their weights, what Omniverse, Maya, Houdini and Blender import.

Layout of `NAME.usd` (binary crate; `.usda` writes text), metres, y up, at the face's frame
rate (`timeCodesPerSecond` = fps; frame i at time code i):

```
/Face                      SkelRoot
/Face/Skeleton             Skeleton, one joint "root" at the identity; skel:animationSource
/Face/Skeleton/Animation   SkelAnimation: blendShapes (the rig's channel names),
                           blendShapeWeights with one time sample per frame
/Face/Mesh                 Mesh (points, faceVertexCounts, faceVertexIndices, displayColor),
                           SkelBindingAPI: skel:skeleton, skel:blendShapes,
                           skel:blendShapeTargets, every vertex bound to "root"
/Face/Mesh/<Channel>       BlendShape: offsets of every vertex (pointIndices omitted)
```

Channels are matched to the rig's by name. Needs the `usd` extra (`usd-core`).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from unitaf_model.model.rig import Rig, match_channels


def import_pxr():
    """`pxr`'s Usd, UsdGeom, UsdSkel, Sdf, Vt, or an error saying how to install them."""
    try:
        return [importlib.import_module(f"pxr.{name}")
                for name in ("Usd", "UsdGeom", "UsdSkel", "Sdf", "Vt")]
    except ImportError as error:
        raise RuntimeError("usd-core is missing: pip install 'unitaf[usd]'") from error


def write_usd(path: Path, face: np.ndarray, channels: Sequence[str], fps: float, rig: Rig,
              name: str = "Face") -> Path:
    """Write the rig and the face's weights as a UsdSkel blend-shape animation (written to a
    temporary name beside `path`, then renamed)."""
    usd, geom, skel, sdf, vt = import_pxr()
    weights = match_channels(face, channels, rig.channels)
    if not fps > 0:
        raise ValueError(f"fps must be positive, not {fps}")
    stage = usd.Stage.CreateInMemory()
    geom.SetStageUpAxis(stage, geom.Tokens.y)
    geom.SetStageMetersPerUnit(stage, 1.0)
    stage.SetTimeCodesPerSecond(float(fps))
    stage.SetStartTimeCode(0)
    stage.SetEndTimeCode(max(len(weights) - 1, 0))
    root = skel.Root.Define(stage, f"/{name}")
    stage.SetDefaultPrim(root.GetPrim())
    skeleton = skel.Skeleton.Define(stage, f"/{name}/Skeleton")
    identity = vt.Matrix4dArray([_identity()])
    skeleton.CreateJointsAttr(["root"])
    skeleton.CreateBindTransformsAttr(identity)
    skeleton.CreateRestTransformsAttr(identity)
    animation = skel.Animation.Define(stage, f"/{name}/Skeleton/Animation")
    animation.CreateJointsAttr(["root"])
    animation.CreateTranslationsAttr(vt.Vec3fArray([(0.0, 0.0, 0.0)]))
    animation.CreateRotationsAttr(vt.QuatfArray([_quat_identity()]))
    animation.CreateScalesAttr(vt.Vec3hArray([(1.0, 1.0, 1.0)]))
    animation.CreateBlendShapesAttr(list(rig.channels))
    series = animation.CreateBlendShapeWeightsAttr()
    for frame, row in enumerate(weights):
        series.Set(vt.FloatArray.FromNumpy(row.astype(np.float32)), float(frame))
    skel.BindingAPI.Apply(skeleton.GetPrim()).CreateAnimationSourceRel().SetTargets(
        [animation.GetPath()])
    _mesh(stage, f"/{name}/Mesh", rig, skeleton, (geom, skel, sdf, vt))
    path = Path(path)
    partial = path.with_name(f"{path.stem}.partial{path.suffix}")
    try:
        stage.GetRootLayer().Export(str(partial))
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)
    return path


def _identity():
    from pxr import Gf

    return Gf.Matrix4d(1.0)


def _quat_identity():
    from pxr import Gf

    return Gf.Quatf(1.0, 0.0, 0.0, 0.0)


def _mesh(stage, where: str, rig: Rig, skeleton, modules) -> None:
    geom, skel, sdf, vt = modules
    mesh = geom.Mesh.Define(stage, where)
    mesh.CreatePointsAttr(vt.Vec3fArray.FromNumpy(rig.meanshape.astype(np.float32)))
    mesh.CreateFaceVertexCountsAttr(vt.IntArray.FromNumpy(np.full(len(rig.faces), 3, np.int32)))
    mesh.CreateFaceVertexIndicesAttr(vt.IntArray.FromNumpy(rig.faces.astype(np.int32).ravel()))
    mesh.CreateSubdivisionSchemeAttr(geom.Tokens.none)
    if rig.colors is not None:
        color = mesh.CreateDisplayColorPrimvar(geom.Tokens.vertex)
        color.Set(vt.Vec3fArray.FromNumpy(rig.colors.astype(np.float32)))
    binding = skel.BindingAPI.Apply(mesh.GetPrim())
    binding.CreateSkeletonRel().SetTargets([skeleton.GetPath()])
    binding.CreateBlendShapesAttr(list(rig.channels))
    count = len(rig.meanshape)
    binding.CreateJointIndicesPrimvar(False, 1).Set(vt.IntArray.FromNumpy(
        np.zeros(count, np.int32)))
    binding.CreateJointWeightsPrimvar(False, 1).Set(vt.FloatArray.FromNumpy(
        np.ones(count, np.float32)))
    targets = []
    for channel, offsets in zip(rig.channels, rig.blendshape, strict=True):
        shape = skel.BlendShape.Define(stage, sdf.Path(where).AppendChild(channel))
        shape.CreateOffsetsAttr(vt.Vec3fArray.FromNumpy(offsets.astype(np.float32)))
        targets.append(shape.GetPath())
    binding.CreateBlendShapeTargetsRel().SetTargets(targets)
