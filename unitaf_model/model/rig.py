"""Vertex rigs: blendshape weights → mesh vertices, the named vertex sets that losses and
metrics read, the one mouth-openness formula, and the channel and mesh helpers every output
uses (a face's channels matched to a rig's by name, vertex normals).

`vertices = meanshape + Σ_i w_i · blendshape_i`. Each rig carries three vertex sets: the inner
mouth (`mouth_idx`, whose y extent is the mouth openness), the lip region (`lip_idx`, for the
lip vertex error) and the upper face (`upper_idx`, for the upper-face dynamics deviation), the
last two with a short name a report prints. Two rigs:
- `load_rig(path)`: UniTalker's ARKit npz format (`meanshape` (V, 3), `blendshape` (51, V, 3)
  in UniTalker's ARKit channel order, `faces`, `inner_mouth_idx`, `outer_mouth_idx`,
  `lower_face_idx`); the real one ships with UniTalker's resources.
- `demo_rig()`: a small procedural ARKit-51 rig the toolkit builds itself, so the demo corpus
  trains with a vertex loss on a fresh machine. Its lips behave like the real rig's: about
  0.032 of mouth opening at rest and about 0.060 with JawOpen = 1, closed by MouthClose.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from unitaf_data.face import ARKIT51_UNITALKER

UNITALKER_LIP_SET = "unitalker-arkit lips v1: outer_mouth_idx"
UNITALKER_UPPER_SET = "unitalker-arkit upper face v1: vertices not in lower_face_idx"
DEMO_LIP_SET = "demo lips v1: ellipse 0.4 x 0.2 around the mouth centre"
DEMO_UPPER_SET = "demo upper face v1: vertices more than 0.35 above the mouth centre"

log = logging.getLogger(__name__)


@dataclass
class Rig:
    channels: tuple[str, ...]
    meanshape: np.ndarray  # (V, 3)
    blendshape: np.ndarray  # (C, V, 3)
    faces: np.ndarray  # (F, 3) triangle vertex indices
    mouth_idx: np.ndarray  # inner-mouth vertices: mouth openness is their y extent
    lip_idx: np.ndarray  # lip-region vertices: lip vertex error (LVE)
    upper_idx: np.ndarray  # upper-face vertices: upper-face dynamics deviation (FDD)
    lip_set: str  # which lip set, and its version, for reports
    upper_set: str  # which upper-face set, and its version, for reports

    def vertices(self, weights: torch.Tensor) -> torch.Tensor:
        """(..., C) weights → (..., V, 3) vertices."""
        basis = torch.as_tensor(self.blendshape, dtype=weights.dtype, device=weights.device)
        mean = torch.as_tensor(self.meanshape, dtype=weights.dtype, device=weights.device)
        return mean + torch.einsum("...c,cvk->...vk", weights, basis)

    @torch.no_grad()
    def mouth_openness(self, faces: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """Mouth openness of every (T, C) weight frame, a chunk of frames at a time: a whole
        corpus of vertices would not fit in memory."""
        chunks = (torch.from_numpy(np.array(faces[start : start + chunk], np.float32))
                  for start in range(0, len(faces), chunk))
        parts = [mouth_openness(self.vertices(part), self.mouth_idx).numpy() for part in chunks]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def mouth_openness(vertices: torch.Tensor, mouth_idx: torch.Tensor | np.ndarray | None = None
                   ) -> torch.Tensor:
    """(..., V, 3) vertices → (...) mouth openness: max − min y over the mouth vertices
    (`mouth_idx` of them; None: the vertices are the mouth's already)."""
    y = vertices[..., 1] if mouth_idx is None else \
        vertices[..., torch.as_tensor(mouth_idx, device=vertices.device), 1]
    return y.amax(-1) - y.amin(-1)


def load_rig(path: str | Path, channels: tuple[str, ...] = ARKIT51_UNITALKER) -> Rig:
    """A UniTalker ARKit npz rig. Its upper face is every vertex outside UniTalker's own
    `lower_face_idx` (which holds both mouth sets): on the real rig 526 of 1220 vertices,
    the eyes, brows, forehead, nose and upper cheeks. There the largest displacement of a
    vertex by an articulation channel averages 0.0004, a tenth of that by an expression
    channel (0.0043) and of JawOpen's reach in the lower face (0.043)."""
    with np.load(path, allow_pickle=False) as data:
        missing = {"meanshape", "blendshape", "faces", "inner_mouth_idx", "outer_mouth_idx",
                   "lower_face_idx"} - set(data.files)
        if missing:
            raise ValueError(f"{path}: not a UniTalker rig, missing {sorted(missing)}")
        meanshape = data["meanshape"].astype(np.float32)
        blendshape = data["blendshape"].astype(np.float32)
        count = len(meanshape)
        if meanshape.shape != (count, 3) or blendshape.shape != (len(channels), count, 3):
            raise ValueError(f"{path}: meanshape {meanshape.shape} and blendshape "
                             f"{blendshape.shape} do not fit {len(channels)} channels")
        faces, mouth, lips, lower = (_indices(path, data, key, count) for key in (
            "faces", "inner_mouth_idx", "outer_mouth_idx", "lower_face_idx"))
    return Rig(channels=channels, meanshape=meanshape, blendshape=blendshape, faces=faces,
               mouth_idx=mouth, lip_idx=lips, upper_idx=np.setdiff1d(np.arange(count), lower),
               lip_set=UNITALKER_LIP_SET, upper_set=UNITALKER_UPPER_SET)


def _indices(path: str | Path, data, key: str, count: int) -> np.ndarray:
    values = data[key]
    if values.dtype.kind not in "iu" or values.size == 0 or values.min() < 0 \
            or values.max() >= count:
        raise ValueError(f"{path}: {key} must be vertex indices in [0, {count})")
    return values.astype(np.int64)


def demo_rig(resolution: int = 33) -> Rig:
    """The procedural ARKit-51 rig: a curved face grid with a mouth ring, eyes and brows.

    Its upper face is the grid above y = −0.2, 0.35 above the mouth centre (18 of 33 rows,
    594 vertices at the default resolution): the nose, cheeks, eyes, brows and forehead.
    Every articulation channel acts at or below the mouth, and the mouth-corner shapes have
    faded to under 1e-3 of their size there."""
    xs, ys = np.meshgrid(np.linspace(-1, 1, resolution), np.linspace(-1.3, 1.1, resolution))
    grid = np.stack([xs.ravel(), ys.ravel()], 1)
    ring = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    mouth_center = np.array([0.0, -0.55])
    lips = mouth_center + np.stack([0.28 * np.cos(ring), 0.016 * np.sin(ring)], 1)
    points = np.concatenate([grid, lips])
    z = 0.3 * (1 - 0.4 * points[:, 0] ** 2 - 0.2 * points[:, 1] ** 2)
    meanshape = np.concatenate([points, z[:, None]], 1).astype(np.float32)
    mouth_idx = np.arange(len(grid), len(points))
    upper = mouth_idx[lips[:, 1] > mouth_center[1]]
    lower = mouth_idx[lips[:, 1] <= mouth_center[1]]
    shapes = _demo_blendshapes(meanshape, upper, lower, mouth_center)
    lip_idx = np.flatnonzero(np.hypot((meanshape[:, 0] - mouth_center[0]) / 0.4,
                                      (meanshape[:, 1] - mouth_center[1]) / 0.2) <= 1.0)
    upper_idx = np.flatnonzero(meanshape[:, 1] > mouth_center[1] + 0.35)
    blendshape = np.stack([shapes[name] for name in ARKIT51_UNITALKER])
    meanshape, blendshape, faces = _mouth_mesh(meanshape, blendshape, resolution, mouth_idx)
    return Rig(channels=ARKIT51_UNITALKER, meanshape=meanshape, blendshape=blendshape,
               faces=faces, mouth_idx=mouth_idx, lip_idx=lip_idx, upper_idx=upper_idx,
               lip_set=DEMO_LIP_SET, upper_set=DEMO_UPPER_SET)


def _bump(points: np.ndarray, center: tuple[float, float], radius: float) -> np.ndarray:
    d2 = ((points[:, 0] - center[0]) ** 2 + (points[:, 1] - center[1]) ** 2) / radius ** 2
    return np.exp(-d2)


def _demo_blendshapes(mean: np.ndarray, upper: np.ndarray, lower: np.ndarray,
                      mouth: np.ndarray) -> dict[str, np.ndarray]:
    """One displacement field per ARKit channel, each where that muscle acts."""
    v = len(mean)
    fields = {name: np.zeros((v, 3), np.float32) for name in ARKIT51_UNITALKER}
    below = np.clip((mouth[1] + 0.02 - mean[:, 1]) / 0.6, 0, 1) * (np.abs(mean[:, 0]) < 0.8)
    fields["JawOpen"][:, 1] = -0.028 * below  # the jaw drops everything under the mouth
    fields["JawOpen"][upper, 1] = 0.0
    fields["JawOpen"][lower, 1] = -0.028
    fields["MouthClose"][lower, 1] = 0.022  # lips close against an open jaw
    fields["MouthClose"][upper, 1] = -0.006
    for side, sign in (("Left", -1.0), ("Right", 1.0)):
        half = lambda idx, s=sign: idx[mean[idx, 0] * s >= 0]  # noqa: E731
        corner = _bump(mean, (sign * 0.28, mouth[1]), 0.12)
        fields[f"MouthLowerDown{side}"][half(lower), 1] = -0.012
        fields[f"MouthUpperUp{side}"][half(upper), 1] = 0.010
        fields[f"MouthSmile{side}"][:, :2] = corner[:, None] * np.array([sign * 0.02, 0.025])
        fields[f"MouthFrown{side}"][:, 1] = -0.02 * corner
        fields[f"MouthStretch{side}"][:, 0] = sign * 0.03 * corner
        fields[f"MouthDimple{side}"][:, 2] = -0.01 * corner
        fields[f"MouthPress{side}"][half(lower), 1] = 0.004
        fields[f"MouthPress{side}"][half(upper), 1] = -0.004
        eye = _bump(mean, (sign * 0.4, 0.35), 0.12)
        fields[f"EyeBlink{side}"][:, 1] = -0.05 * eye * (mean[:, 1] > 0.35)
        fields[f"EyeWide{side}"][:, 1] = 0.02 * eye * (mean[:, 1] > 0.35)
        fields[f"EyeSquint{side}"][:, 1] = 0.015 * eye * (mean[:, 1] < 0.35)
        fields[f"BrowDown{side}"][:, 1] = -0.03 * _bump(mean, (sign * 0.4, 0.62), 0.15)
        fields[f"BrowOuterUp{side}"][:, 1] = 0.03 * _bump(mean, (sign * 0.6, 0.6), 0.15)
        fields[f"CheekSquint{side}"][:, 1] = 0.015 * _bump(mean, (sign * 0.45, -0.1), 0.2)
        fields[f"NoseSneer{side}"][:, 1] = 0.012 * _bump(mean, (sign * 0.12, 0.0), 0.1)
        fields[f"Mouth{side}"][np.concatenate([upper, lower]), 0] = sign * 0.03
        fields[f"Jaw{side}"][:, 0] = sign * 0.03 * below
        for look, axis, step in (("Down", 1, -0.01), ("Up", 1, 0.01), ("In", 0, -sign * 0.01),
                                 ("Out", 0, sign * 0.01)):
            fields[f"EyeLook{look}{side}"][:, axis] = step * eye
    lips = np.concatenate([upper, lower])
    fields["MouthPucker"][lips, 0] = -0.4 * (mean[lips, 0] - mouth[0]) * 0.5
    fields["MouthPucker"][lips, 2] = 0.02
    fields["MouthFunnel"][lips, 1] = 0.3 * (mean[lips, 1] - mouth[1])
    fields["MouthFunnel"][lips, 2] = 0.02
    fields["MouthRollLower"][lower, 2] = -0.015
    fields["MouthRollUpper"][upper, 2] = -0.015
    fields["MouthShrugLower"][lower, 1] = 0.008
    fields["MouthShrugUpper"][upper, 1] = 0.008
    fields["JawForward"][:, 2] = 0.02 * below
    fields["BrowInnerUp"][:, 1] = 0.03 * _bump(mean, (0.0, 0.62), 0.2)
    fields["CheekPuff"][:, 2] = 0.03 * (_bump(mean, (-0.45, -0.35), 0.2)
                                        + _bump(mean, (0.45, -0.35), 0.2))
    return fields


def _grid_faces(resolution: int) -> np.ndarray:
    index = np.arange(resolution * resolution).reshape(resolution, resolution)
    a, b = index[:-1, :-1].ravel(), index[:-1, 1:].ravel()
    c, d = index[1:, :-1].ravel(), index[1:, 1:].ravel()
    return np.concatenate([np.stack([a, b, c], 1), np.stack([b, d, c], 1)]).astype(np.int64)


def _mouth_mesh(mean: np.ndarray, blendshape: np.ndarray, resolution: int,
                ring: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The demo face's triangles with a mouth that opens: the grid loses its quads over the lip
    ring, the ring is stitched to the hole's edge, and each lip is closed onto a seam of vertices
    appended midway between the upper and lower lip. The two seams coincide at rest (no gap) and
    each moves with its own lip, so the mouth shows a hole exactly when the lips part."""
    half = len(ring) // 2  # ring[0] and ring[half] are the mouth corners
    upper, lower = ring[1:half], ring[len(ring) - 1:half:-1]  # lower[k] lies under upper[k]
    seam = (mean[upper] + mean[lower]) / 2
    upper_seam = len(mean) + np.arange(len(upper))
    lower_seam = upper_seam + len(upper)
    mean = np.concatenate([mean, seam, seam])
    blendshape = np.concatenate([blendshape, blendshape[:, upper], blendshape[:, lower]], 1)
    over_lip, under_lip = ring[:half + 1], np.r_[ring[half:], ring[0]]  # corner to corner
    grid, edge = _grid_without_mouth(mean[: resolution * resolution], resolution, mean[ring])
    right, left = (int(np.argmin(np.linalg.norm(mean[edge, :2] - mean[corner, :2], axis=1)))
                   for corner in (ring[0], ring[half]))
    over_edge = np.roll(edge, -right)[: (left - right) % len(edge) + 1]
    under_edge = np.roll(edge, -left)[: (right - left) % len(edge) + 1]
    faces = np.concatenate([
        grid,
        _zip_strips(mean, over_lip, np.r_[ring[0], upper_seam, ring[half]]),
        _zip_strips(mean, under_lip, np.r_[ring[half], lower_seam[::-1], ring[0]]),
        _zip_strips(mean, over_lip, over_edge),
        _zip_strips(mean, under_lip, under_edge),
    ])
    return mean.astype(np.float32), blendshape.astype(np.float32), faces


def _grid_without_mouth(points: np.ndarray, resolution: int,
                        lips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grid triangles outside the lips' bounding box, and the hole's edge loop counter-clockwise."""
    index = np.arange(resolution * resolution).reshape(resolution, resolution)
    xs, ys = points[index[0], 0], points[index[:, 0], 1]
    (x0, y0), (x1, y1) = lips[:, :2].min(0), lips[:, :2].max(0)
    cols = np.flatnonzero((xs[:-1] < x1) & (xs[1:] > x0))
    rows = np.flatnonzero((ys[:-1] < y1) & (ys[1:] > y0))
    hole = np.zeros((resolution - 1, resolution - 1), bool)
    hole[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] = True
    keep = np.tile(~hole.ravel(), 2)  # _grid_faces gives two triangles per quad, quad-major
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    edge = np.r_[index[r0, c0:c1], index[r0:r1, c1], index[r1, c1:c0:-1], index[r1:r0:-1, c0]]
    return _grid_faces(resolution)[keep], edge


def _zip_strips(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Triangles filling the band between two polylines that run the same way, advancing along
    whichever is behind in relative arc length, each triangle turned to face +z."""
    def progress(line: np.ndarray) -> np.ndarray:
        steps = np.linalg.norm(np.diff(points[line, :2], axis=0), axis=1)
        return np.r_[0.0, np.cumsum(steps)] / steps.sum()

    ta, tb = progress(a), progress(b)
    i = j = 0
    triangles = []
    while i < len(a) - 1 or j < len(b) - 1:
        if j == len(b) - 1 or (i < len(a) - 1 and ta[i + 1] <= tb[j + 1]):
            triangles.append((a[i], a[i + 1], b[j]))
            i += 1
        else:
            triangles.append((a[i], b[j + 1], b[j]))
            j += 1
    tri = np.array([t for t in triangles if len(set(t)) == 3], dtype=np.int64)
    first = points[tri[:, 0], :2]
    u, v = points[tri[:, 1], :2] - first, points[tri[:, 2], :2] - first
    back = u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0] < 0
    tri[back] = tri[back][:, [0, 2, 1]]
    return tri


def check_face(face: np.ndarray, channels: Sequence[str]) -> np.ndarray:
    """`face` as float32 (T > 0, len(channels)), finite; a ValueError otherwise."""
    face = np.asarray(face, dtype=np.float32)
    if face.ndim != 2 or face.shape[1] != len(channels) or len(face) == 0:
        raise ValueError(f"face must be (T > 0, {len(channels)}) for its channel names, "
                         f"not {face.shape}")
    if not np.isfinite(face).all():
        raise ValueError("face has non-finite values")
    return face


def folded_index(names: Sequence[str], what: str) -> dict[str, int]:
    """Channel name (lower case) -> position; names that repeat ignoring case are refused."""
    index = {name.lower(): i for i, name in enumerate(names)}
    if len(index) != len(names):
        raise ValueError(f"{what} channel names repeat (ignoring case): {list(names)}")
    return index


def match_channels(face: np.ndarray, channels: Sequence[str],
                   names: Sequence[str]) -> np.ndarray:
    """(T, len(names)) float32: column k is the face's channel named `names[k]` (compared
    case-insensitively), zero where the face has no such channel."""
    face = check_face(face, channels)
    index, targets = folded_index(channels, "face"), folded_index(names, "target")
    common = [k for k, name in enumerate(names) if name.lower() in index]
    if not common:
        raise ValueError(f"no face channel matches any of the {len(names)} target channels "
                         f"(face has {list(channels)[:5]}...)")
    unused = [name for name in channels if name.lower() not in targets]
    if unused:
        log.warning("%d face channels have no target channel and are dropped: %s",
                    len(unused), ", ".join(unused))
    out = np.zeros((len(face), len(names)), np.float32)
    out[:, common] = face[:, [index[names[k].lower()] for k in common]]
    return out


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit normals: the area-weighted sum of the adjacent triangles' normals; +z for a
    vertex that no triangle uses."""
    corners = vertices[faces]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals = np.zeros(vertices.shape, np.float64)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_normals)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return np.where(length > 0, normals / np.where(length > 0, length, 1), [0.0, 0.0, 1.0])
