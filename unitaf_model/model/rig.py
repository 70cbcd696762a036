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
- `demo_rig()`: the built-in head (`unitaf_model.model.head`), a procedural ARKit-51 head the
  toolkit builds itself, so the demo corpus trains with a vertex loss and previews show a face
  on a fresh machine. Its lips behave like the real rig's: 0.032 of mouth opening at rest and
  0.060 with JawOpen = 1, back to 0.032 when MouthClose matches JawOpen.
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
DEMO_LIP_SET = "demo head lips v2: within 35 x 22 mm of the mouth centre, and the inner lips"
DEMO_UPPER_SET = "demo head upper face v2: face skin above the nose base, and the eyelids"

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
    colors: np.ndarray | None = None  # (V, 3) per-vertex RGB in [0, 1] for previews; None: skin

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


def demo_rig() -> Rig:
    """The built-in head (`unitaf_model.model.head`): 4,303 vertices, metres, with eyes, lids,
    teeth, tongue and a jaw that turns about its hinge, and per-vertex colours."""
    from unitaf_model.model.head import build_head, head_sets, head_targets

    head, skin = build_head()
    targets = head_targets(head, skin)
    points, colors, faces = head.mesh()
    sets = head_sets(head, skin)
    blendshape = np.stack([targets[name] for name in ARKIT51_UNITALKER]).astype(np.float32)
    return Rig(channels=ARKIT51_UNITALKER, meanshape=points.astype(np.float32),
               blendshape=blendshape, faces=faces, mouth_idx=sets["mouth"],
               lip_idx=sets["lips"], upper_idx=sets["upper"], lip_set=DEMO_LIP_SET,
               upper_set=DEMO_UPPER_SET, colors=colors.astype(np.float32))


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
