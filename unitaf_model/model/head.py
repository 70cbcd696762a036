"""The built-in head: a procedural human head with ARKit-51 morph targets, made here in code
(no third-party mesh), so that previews, exports and vertex losses have a face on a fresh
machine.

Units are metres, as on UniTalker's ARKit rig: x to the subject's left, y up, z out of the
face (the viewer is on +z); "Left" channels act on the subject's left (+x), as there.

Parts, each its own surface with per-vertex colours:
- skin: a closed-top head and neck swept from three profiles (front, side, back) blended
  around a superellipse, with eye sockets, brow ridge, nose and nostril wings, cheekbones,
  lips with thickness and a chin; brows painted on it. The mouth is a slit in the skin: the
  lip line is one row of vertices whose lower half is duplicated, so the lips part exactly
  when the lower lip leaves the upper. Each lip curls in behind the lip line to its gum (the
  inner lip rows).
- eyes: spheres with sclera, iris and pupil; upper and lower lids as shells over them.
- inner mouth: upper and lower teeth along a dental arch, a tongue, and a dark bowl behind them.

Morph targets follow Apple's ARKit descriptions: JawOpen turns the jaw, lower lip, lower teeth
and tongue about the jaw's hinge (0.3 rad); MouthClose takes the lips back together over an
open jaw (JawOpen = MouthClose shuts them exactly); EyeBlink rotates the upper lid
down over the eye to meet the lower lid; EyeLook* turn the eyeballs; Funnel and Pucker push the
lips forward and in (Funnel also parts them); smile, frown, stretch and dimple move the mouth
corners; press (squeezing the inner lips together), roll and shrug act on the lips; cheeks
puff and squint; brows raise and lower; the nose sneers.

Vertex sets: `mouth` (the two lip lines and the inner lip rows down to the gums: their y
extent is the mouth openness, 0.032 at rest and 0.060 with JawOpen = 1, like the real rig's
inner mouth; MouthPress squeezes it below rest), `lips` (the lip region for the lip vertex
error) and `upper` (skin above the nose's base and the eyelids, for the upper-face dynamics
deviation).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from unitaf_data.face import ARKIT51_UNITALKER

MOUTH_Y = -0.040  # the lip line
CORNER_X = 0.025  # half the mouth's width
HINGE = np.array([0.0, 0.0, -0.02])  # the jaw's hinge, in front of the ears
JAW_ANGLE = 0.30  # radians of JawOpen = 1
EYE_CENTRE = np.array([0.033, 0.028])  # x, y of the left eye (mirrored for the right)
EYE_RADIUS = 0.0115
LID_RADIUS = 0.0128
PRESS = 0.018  # of the gum rows, moved together by both MouthPress at 1: openness - 0.008
CORNER_WEIGHT = 0.33  # of the jaw's turn at the mouth corners, as the skin beside them

COLORS = {
    "skin": (0.86, 0.68, 0.57), "lip": (0.74, 0.40, 0.40), "inner_lip": (0.60, 0.30, 0.31),
    "teeth": (0.94, 0.93, 0.87), "gum": (0.78, 0.45, 0.47), "tongue": (0.80, 0.44, 0.47),
    "cavity": (0.22, 0.07, 0.08), "sclera": (0.95, 0.94, 0.92), "iris": (0.33, 0.22, 0.13),
    "pupil": (0.03, 0.03, 0.03), "brow": (0.32, 0.21, 0.15), "lash": (0.16, 0.10, 0.08),
}  # fmt: skip

# head profiles, crown to neck: (distance from the vertical axis, height) at the same 14
# landmarks: crown, top, forehead, brow, eye, cheek, upper lip, lip line, chin front, chin
# bottom, under the chin, throat, neck, neck base
_FRONT = [(0.0, 0.125), (0.045, 0.117), (0.076, 0.092), (0.088, 0.050), (0.084, 0.028),
          (0.088, 0.000), (0.0885, -0.022), (0.0875, MOUTH_Y), (0.0855, -0.064), (0.076, -0.096),
          (0.056, -0.108), (0.046, -0.118), (0.045, -0.150), (0.050, -0.200)]
_SIDE = [(0.0, 0.125), (0.048, 0.117), (0.072, 0.092), (0.076, 0.050), (0.076, 0.028),
         (0.075, 0.000), (0.072, -0.022), (0.068, MOUTH_Y), (0.062, -0.064), (0.055, -0.090),
         (0.052, -0.102), (0.050, -0.118), (0.050, -0.150), (0.054, -0.200)]
_BACK = [(0.0, 0.125), (0.052, 0.117), (0.088, 0.092), (0.100, 0.050), (0.100, 0.028),
         (0.096, 0.000), (0.087, -0.022), (0.078, MOUTH_Y), (0.066, -0.064), (0.057, -0.090),
         (0.054, -0.102), (0.053, -0.118), (0.052, -0.150), (0.055, -0.200)]
# rows between consecutive landmarks (denser over the face)
_ROWS = (3, 3, 5, 4, 5, 6, 5, 6, 5, 3, 2, 3, 3)
_MOUTH_ROW = sum(_ROWS[:7]) - 1  # the row on the lip line (the crown row is not in the grid)
_COLUMNS = 64
_SUPERELLIPSE = 2.6  # > 2: a flatter face than an ellipse
# inner lip rows behind the lip line: (up, back) offsets of the upper lip's (mirrored for the
# lower): the lip curls in to its gum
_INNER_LIP = ((0.003, -0.003), (0.009, -0.006), (0.016, -0.008))


@dataclass
class Head:
    """The head's mesh, colours, morph targets (one (V, 3) field per ARKit channel) and
    vertex sets."""

    points: list[np.ndarray] = field(default_factory=list)
    colors: list[np.ndarray] = field(default_factory=list)
    faces: list[np.ndarray] = field(default_factory=list)
    parts: dict[str, np.ndarray] = field(default_factory=dict)
    count: int = 0

    def add(self, name: str, points: np.ndarray, colors: np.ndarray | str) -> np.ndarray:
        """Append a part's vertices; their indices."""
        points = np.asarray(points, np.float64).reshape(-1, 3)
        index = self.count + np.arange(len(points))
        rgb = np.broadcast_to(np.asarray(COLORS[colors] if isinstance(colors, str) else colors,
                                         np.float64), points.shape)
        self.points.append(points)
        self.colors.append(np.array(rgb))
        self.parts[name] = index
        self.count += len(points)
        return index

    def triangles(self, triangles: np.ndarray) -> None:
        triangles = np.asarray(triangles, np.int64).reshape(-1, 3)
        keep = (triangles[:, 0] != triangles[:, 1]) & (triangles[:, 1] != triangles[:, 2]) \
            & (triangles[:, 0] != triangles[:, 2])
        self.faces.append(triangles[keep])

    def mesh(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (np.concatenate(self.points), np.concatenate(self.colors),
                np.concatenate(self.faces))


def _smooth(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((np.asarray(x, np.float64) - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _gauss(x: np.ndarray, y: np.ndarray, cx: float, cy: float, sx: float, sy: float
           ) -> np.ndarray:
    return np.exp(-0.5 * (((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))


def _quads(index: np.ndarray, wrap: bool = False) -> np.ndarray:
    """Two triangles per cell of a (rows, columns) index grid (the last column joined to the
    first with `wrap`), wound counter-clockwise seen from outside when rows run downward and
    columns run to the subject's left."""
    grid = np.concatenate([index, index[:, :1]], 1) if wrap else index
    a, b = grid[:-1, :-1].ravel(), grid[:-1, 1:].ravel()
    c, d = grid[1:, :-1].ravel(), grid[1:, 1:].ravel()
    return np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, d], 1)])


def _profile_rows() -> np.ndarray:
    """(rows, 3 profiles, 2): each profile's (radius, height) on every row, rows running from
    just under the crown to the neck's base; a monotone cubic through the landmarks."""
    from scipy.interpolate import Akima1DInterpolator

    marks = np.arange(len(_FRONT), dtype=np.float64)
    t = np.concatenate([np.linspace(k, k + 1, n, endpoint=False) for k, n in enumerate(_ROWS)]
                       + [[len(_ROWS)]])[1:]  # the crown itself is a single vertex
    return np.stack([Akima1DInterpolator(marks, np.array(p), axis=0, method="makima")(t)
                     for p in (_FRONT, _SIDE, _BACK)], 1)


def _base_skin() -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns, 3) points of the featureless head and its column angles (0 = front,
    increasing toward the subject's left)."""
    profiles = _profile_rows()
    u = np.linspace(-1, 1, _COLUMNS, endpoint=False) + 1.0 / _COLUMNS
    theta = np.pi * u * (0.38 + 0.62 * np.abs(u))  # denser at the front
    s, c = np.sin(theta), np.cos(theta)
    power = 2.0 / _SUPERELLIPSE
    sx, cz = np.sign(s) * np.abs(s) ** power, np.sign(c) * np.abs(c) ** power
    front, side, back = profiles[:, 0, :, None], profiles[:, 1, :, None], profiles[:, 2, :, None]
    depth = np.where(c >= 0, front[:, 0], back[:, 0])
    y = np.where(c >= 0, c**2 * front[:, 1], c**2 * back[:, 1]) + s**2 * side[:, 1]
    return np.stack([side[:, 0] * sx, y, depth * cz], -1), theta


def _relief(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Forward displacement of the face's features at (x, y): sockets, brow ridge, nose,
    cheekbones, lips and chin."""
    ax = np.abs(x)
    sockets = -0.011 * _gauss(ax, y, EYE_CENTRE[0], EYE_CENTRE[1] + 0.002, 0.014, 0.010)
    brow = 0.004 * _gauss(ax, y, 0.030, 0.047, 0.022, 0.005)
    bridge = np.clip((0.032 - y) / 0.034, 0, 1)  # 0 at the brow, 1 at the nose tip
    nose_height = (0.004 + 0.019 * bridge**1.5) * _smooth(-0.015, -0.003, y)
    nose = nose_height * np.exp(-0.5 * (x / (0.0055 + 0.005 * bridge)) ** 2) \
        * _smooth(0.040, 0.028, y)
    wings = 0.008 * _gauss(ax, y, 0.0125, -0.008, 0.0045, 0.0045)
    cheeks = 0.006 * _gauss(ax, y, 0.046, 0.002, 0.014, 0.012)
    taper = np.sqrt(np.clip(1 - (x / (CORNER_X + 0.004)) ** 2, 0, 1))
    lips = taper * (0.0075 * _gauss(0, y, 0, MOUTH_Y + 0.0052, 1, 0.0036)
                    + 0.0070 * _gauss(0, y, 0, MOUTH_Y - 0.0062, 1, 0.0042))
    groove = -0.003 * _gauss(x, y, 0, MOUTH_Y - 0.017, 0.02, 0.004)  # under the lower lip
    chin = 0.005 * _gauss(x, y, 0, -0.078, 0.016, 0.010)
    return sockets + brow + nose + wings + cheeks + lips + groove + chin


def _lipness(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """1 on the red of the lips, 0 on skin."""
    taper = np.clip(1 - (x / CORNER_X) ** 2, 0, 1)
    upper = _smooth(MOUTH_Y + 0.011 - 0.004 * (1 - taper), MOUTH_Y + 0.006, y) * (y >= MOUTH_Y)
    lower = _smooth(MOUTH_Y - 0.015 + 0.005 * (1 - taper), MOUTH_Y - 0.009, y) * (y < MOUTH_Y)
    return np.clip((upper + lower) * _smooth(0.0, 0.15, taper), 0, 1)


def _browness(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    arch = 0.046 + 0.005 * (1 - ((ax - 0.034) / 0.024) ** 2)
    along = _smooth(0.010, 0.015, ax) * _smooth(0.060, 0.052, ax)
    return along * _smooth(0.0042, 0.0022, np.abs(y - arch))


def _skin(head: Head) -> dict[str, np.ndarray]:
    """The skin with its mouth slit and inner lip rows; the index grids it needs later."""
    base, theta = _base_skin()
    front = _smooth(0.0, 0.5, np.cos(theta))[None]
    points = base.copy()
    points[..., 2] += _relief(base[..., 0], base[..., 1]) * front
    rows, columns = points.shape[:2]
    lip = _lipness(base[..., 0], base[..., 1]) * front
    brow = _browness(base[..., 0], base[..., 1]) * front
    skin, red, dark = (np.array(COLORS[k]) for k in ("skin", "lip", "brow"))
    rgb = skin + lip[..., None] * (red - skin)
    rgb = rgb + brow[..., None] * (dark - rgb)
    crown = head.add("crown", [0.0, _FRONT[0][1], 0.0], "skin")
    grid = head.add("skin", points.reshape(-1, 3), rgb.reshape(-1, 3)).reshape(rows, columns)
    mouth_columns = np.flatnonzero((np.abs(points[_MOUTH_ROW, :, 0]) < CORNER_X)
                                   & (np.cos(theta) > 0))
    corners = np.array([mouth_columns[0] - 1, mouth_columns[-1] + 1])
    line = points[_MOUTH_ROW, mouth_columns]
    lower_line = head.add("lower_line", line, rgb[_MOUTH_ROW, mouth_columns])
    lower_grid = grid.copy()
    lower_grid[_MOUTH_ROW, mouth_columns] = lower_line
    head.triangles(np.stack([np.full(columns, crown[0]), grid[0], np.roll(grid[0], -1)], 1))
    cells = _quads(grid[: _MOUTH_ROW + 1], wrap=True)
    head.triangles(np.concatenate([cells, _quads(lower_grid[_MOUTH_ROW:], wrap=True)]))
    span = np.r_[corners[0], mouth_columns, corners[1]]
    upper_rows, lower_rows = [grid[_MOUTH_ROW, span]], [lower_grid[_MOUTH_ROW, span]]
    ends = points[_MOUTH_ROW, corners]
    for k, (up, back) in enumerate(_INNER_LIP):
        shade = np.array(COLORS["inner_lip" if k < 2 else "gum"])
        for sign, rows_list, name in ((1, upper_rows, "upper_inner"),
                                      (-1, lower_rows, "lower_inner")):
            inner = line + [0.0, sign * up, back]
            inner[:, 0] *= 1 - 0.12 * (k + 1) / len(_INNER_LIP)  # the mouth narrows inside
            added = head.add(f"{name}{k}", inner, shade)
            rows_list.append(np.r_[grid[_MOUTH_ROW, corners[0]], added,
                                   grid[_MOUTH_ROW, corners[1]]])
    upper_inner, lower_inner = np.array(upper_rows), np.array(lower_rows)
    head.triangles(_quads(upper_inner)[:, ::-1])
    head.triangles(_quads(lower_inner))
    del ends
    return {"grid": grid, "lower_grid": lower_grid, "mouth_columns": mouth_columns,
            "span": span, "upper_inner": upper_inner, "lower_inner": lower_inner,
            "points": points, "theta": theta}


def _sphere(rings: np.ndarray, segments: int) -> np.ndarray:
    """Unit vectors on rings at polar angles `rings` from +z (the first ring may be the
    pole, angle 0), `segments` around each: (rings, segments, 3)."""
    around = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    s, c = np.sin(rings)[:, None], np.cos(rings)[:, None]
    return np.stack([s * np.cos(around), s * np.sin(around), np.broadcast_to(c, (len(rings),
                                                                                 segments))],
                    -1)


def _eye(head: Head, side: str, centre: np.ndarray) -> None:
    """An eyeball (pupil on +z) and its two lids."""
    rings = np.array([0.0, 0.13, 0.26, 0.36, 0.44, 0.62, 0.9, 1.25, 1.65, 2.1, 2.6, 3.05])
    unit = _sphere(rings, 16)
    colour = np.where(rings[:, None, None] < 0.2, COLORS["pupil"],
                      np.where(rings[:, None, None] < 0.4, COLORS["iris"], COLORS["sclera"]))
    colour = np.broadcast_to(colour, unit.shape)
    ball = head.add(f"eye{side}", (centre + EYE_RADIUS * unit[1:]).reshape(-1, 3),
                    colour[1:].reshape(-1, 3))
    pole = head.add(f"pupil{side}", centre + [0, 0, EYE_RADIUS], "pupil")
    ring_index = ball.reshape(len(rings) - 1, 16)
    head.triangles(np.stack([np.full(16, pole[0]), ring_index[0], np.roll(ring_index[0], -1)],
                            1))
    head.triangles(_quads(ring_index, wrap=True))
    for lid, elevations in (("upper", np.linspace(1.45, 0.30, 6)),
                            ("lower", np.linspace(-0.42, -1.40, 4))):
        azimuth = np.linspace(-1.35, 1.35, 13)
        e, a = np.meshgrid(elevations, azimuth, indexing="ij")
        shell = centre + LID_RADIUS * np.stack([np.cos(e) * np.sin(a), np.sin(e),
                                                np.cos(e) * np.cos(a)], -1)
        rgb = np.broadcast_to(np.array(COLORS["skin"]) * 0.97, shell.shape).copy()
        rgb[-1 if lid == "upper" else 0] = COLORS["lash"]
        index = head.add(f"{lid}_lid{side}", shell.reshape(-1, 3), rgb.reshape(-1, 3))
        head.triangles(_quads(index.reshape(shell.shape[:2])))


def _mouth_inside(head: Head, front_z: float) -> None:
    """Teeth along a dental arch, the tongue and the dark bowl behind them."""
    u = np.linspace(-1.3, 1.3, 15)
    arch = np.stack([0.0205 * np.sin(u), np.zeros_like(u), front_z - 0.017 * (1 - np.cos(u))],
                    -1)
    for name, top, bottom, back in (("upper_teeth", 0.013, -0.004, 0.0),
                                    ("lower_teeth", 0.0005, -0.011, -0.0025)):
        rows = np.stack([arch + [0, MOUTH_Y + top, back], arch + [0, MOUTH_Y + bottom, back]])
        rgb = np.broadcast_to(COLORS["teeth"], rows.shape).copy()
        rgb[0 if name == "upper_teeth" else 1] = COLORS["gum"]
        index = head.add(name, rows.reshape(-1, 3), rgb.reshape(-1, 3))
        head.triangles(_quads(index.reshape(2, -1)))
    unit = _sphere(np.linspace(0.0, np.pi / 2, 6)[1:], 14)  # the tongue's top half
    tongue = np.array([0.0, MOUTH_Y - 0.013, front_z - 0.024]) + unit[..., [0, 2, 1]] * [
        0.018, 0.007, 0.024]
    index = head.add("tongue", tongue.reshape(-1, 3), "tongue")
    top = head.add("tongue_top", [0.0, MOUTH_Y - 0.006, front_z - 0.024], "tongue")
    grid = index.reshape(tongue.shape[:2])
    head.triangles(np.stack([np.full(14, top[0]), np.roll(grid[0], -1), grid[0]], 1))
    head.triangles(_quads(grid, wrap=True))
    radii, centre = np.array([0.031, 0.026, 0.034]), np.array([0.0, MOUTH_Y - 0.001,
                                                                front_z - 0.010])
    bowl = _sphere(np.linspace(np.pi / 2, np.pi, 6)[:-1], 16) * radii + centre
    index = head.add("cavity", bowl.reshape(-1, 3), "cavity").reshape(bowl.shape[:2])
    back = head.add("cavity_back", centre - [0, 0, radii[2]], "cavity")
    head.triangles(_quads(index, wrap=True))
    head.triangles(np.stack([index[-1], np.roll(index[-1], -1), np.full(16, back[0])], 1))


def build_head() -> tuple[Head, dict[str, np.ndarray]]:
    """The head's parts and the skin's index grids."""
    head = Head()
    skin = _skin(head)
    for side, sign in (("Left", 1.0), ("Right", -1.0)):
        centre = np.array([sign * EYE_CENTRE[0], EYE_CENTRE[1], _eye_depth(skin)])
        _eye(head, side, centre)
    _mouth_inside(head, skin["points"][_MOUTH_ROW, skin["mouth_columns"], 2].max() - 0.011)
    return head, skin


def _eye_depth(skin: dict[str, np.ndarray]) -> float:
    """z of the eyeballs' centres: their fronts just under the skin around the socket."""
    points = skin["points"]
    near = np.argmin(np.hypot(points[..., 0] - EYE_CENTRE[0], points[..., 1] - EYE_CENTRE[1]))
    return float(points.reshape(-1, 3)[near, 2]) - 0.0040


def _rotation_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rotation_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _turn(points: np.ndarray, centre: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """The displacement that turns points about a centre."""
    return (points - centre) @ rotation.T + centre - points


class _Fields:
    """Morph targets over the head's vertices: one (V, 3) displacement per ARKit channel."""

    def __init__(self, head: Head, skin: dict[str, np.ndarray]):
        self.head, self.skin = head, skin
        self.points, _, _ = head.mesh()
        self.x, self.y, self.z = self.points.T
        self.count = len(self.points)
        self.out = {name: np.zeros((self.count, 3)) for name in ARKIT51_UNITALKER}
        parts = head.parts
        self.is_skin = self.mask("crown", "skin", "lower_line",
                                 *(f"{side}_inner{k}" for side in ("upper", "lower")
                                   for k in range(len(_INNER_LIP))))
        grid = np.zeros(self.count, bool)
        grid[parts["skin"]] = True
        self.lower = self.mask("lower_line", *(f"lower_inner{k}" for k in range(len(_INNER_LIP))))
        self.lower |= grid & (self.y < MOUTH_Y - 1e-9)
        self.upper = self.is_skin & ~self.lower
        self.inner = self.mask(*(f"{side}_inner{k}" for side in ("upper", "lower")
                                 for k in range(len(_INNER_LIP))))
        self.depth = np.zeros(self.count)  # of the inner lip rows: 1/3, 2/3, 1 to the gum
        for side in ("upper", "lower"):
            for k in range(len(_INNER_LIP)):
                self.depth[head.parts[f"{side}_inner{k}"]] = (k + 1) / len(_INNER_LIP)

    def mask(self, *names: str) -> np.ndarray:
        found = np.zeros(self.count, bool)
        for name in names:
            found[self.head.parts[name]] = True
        return found

    def gauss(self, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
        """A bump on the face's outer skin. It leaves the inner lip rows alone: their y extent
        is the mouth's openness, which only the lips' and jaw's own shapes change."""
        return _gauss(self.x, self.y, cx, cy, sx, sy) * (self.is_skin & ~self.inner) \
            * (self.z > 0)

    def set(self, name: str, weight: np.ndarray, vector) -> None:
        self.out[name] += np.asarray(weight, np.float64)[:, None] * np.asarray(vector)

    def jaw_weight(self) -> np.ndarray:
        """How much of the jaw's turn each vertex follows."""
        x, y, z = self.x, self.y, self.z
        ell = np.sqrt(np.clip(1 - (x / CORNER_X) ** 2, 0, 1))
        below = MOUTH_Y - y
        inside = np.abs(x) < CORNER_X
        corner = CORNER_WEIGHT * (np.abs(x) / CORNER_X) ** 3  # the lips meet at the corners
        weight = np.where(inside, np.where(self.lower, np.maximum(ell, corner) + (1 - ell)
                                           * _smooth(0, 0.016, below),
                                           corner * _smooth(-0.010, 0.0, below)),
                          _smooth(-0.010, 0.016, below))
        mandible = -0.112 + 0.045 * _smooth(0.06, -0.015, z)
        weight *= _smooth(mandible - 0.022, mandible + 0.014, y)
        weight *= _smooth(HINGE[2] - 0.01, HINGE[2] + 0.025, z)
        weight = np.where(self.is_skin, weight, 0.0)
        weight[self.mask("lower_teeth", "tongue", "tongue_top")] = 1.0
        cavity = self.mask("cavity", "cavity_back")
        weight[cavity] = _smooth(MOUTH_Y + 0.004, MOUTH_Y - 0.012, y[cavity])
        return weight

    def jaw(self) -> np.ndarray:
        jaw = self.jaw_weight()[:, None] * _turn(self.points, HINGE, _rotation_x(JAW_ANGLE))
        self.out["JawOpen"] = jaw
        return jaw

    def mouth_close(self, jaw: np.ndarray) -> None:
        """The lips (their lines, their inner rows and the red around them) go back by exactly
        the jaw's turn, fading over the skin away from them: JawOpen = MouthClose shuts the
        lips and leaves the mouth's openness at its rest value."""
        away = np.abs(self.y - MOUTH_Y)
        band = np.where(self.inner | (away < 1e-9), 1.0, _smooth(0.016, 0.004, away))
        self.out["MouthClose"] = -(band * self.is_skin)[:, None] * jaw

    def lips(self) -> None:
        x, y = self.x, self.y
        lat = _smooth(CORNER_X + 0.008, CORNER_X * 0.3, np.abs(x))
        band_up = self.upper * _smooth(0.018, 0.004, y - MOUTH_Y) * lat
        band_low = self.lower * _smooth(0.020, 0.005, MOUTH_Y - y) * lat
        red_up = band_up * ~self.inner * (y > MOUTH_Y + 1e-3)
        red_low = band_low * ~self.inner * (y < MOUTH_Y - 1e-3)
        near = _smooth(CORNER_X + 0.016, 0.0, np.abs(x)) * self.is_skin \
            * _smooth(0.026, 0.008, np.abs(y - MOUTH_Y))
        self.set("MouthRollUpper", band_up, (0, 0, -0.004))
        self.set("MouthRollUpper", red_up, (0, -0.0025, 0))
        self.set("MouthRollLower", band_low, (0, 0, -0.004))
        self.set("MouthRollLower", red_low, (0, 0.0025, 0))
        self.set("MouthShrugUpper", band_up, (0, 0.003, 0.002))
        self.set("MouthShrugLower", band_low, (0, 0.0035, 0.003))
        self.set("MouthShrugLower", self.gauss(0, -0.080, 0.018, 0.012), (0, 0.002, 0.001))
        self.set("MouthPucker", near, (0, 0, 0.011))
        self.out["MouthPucker"][:, 0] -= 0.35 * near * x
        self.set("MouthFunnel", near, (0, 0, 0.009))
        self.out["MouthFunnel"][:, 0] -= 0.2 * near * x
        self.set("MouthFunnel", band_up, (0, 0.003, 0))
        self.set("MouthFunnel", band_low, (0, -0.004, 0))
        mouth = self.gauss(0, MOUTH_Y, 0.03, 0.016) + self.mask("upper_teeth") * 0
        for side, sign in (("Left", 1.0), ("Right", -1.0)):
            half = _smooth(-sign * 0.006, sign * 0.006, x) if sign > 0 else \
                _smooth(0.006, -0.006, x)
            self.set(f"MouthUpperUp{side}", band_up * half, (0, 0.0055, 0.001))
            self.set(f"MouthLowerDown{side}", band_low * half, (0, -0.0055, 0))
            self.set(f"MouthPress{side}", red_up * half, (0, -0.0015, -0.0015))
            self.set(f"MouthPress{side}", red_low * half, (0, 0.0015, -0.0015))
            # pressed lips squeeze their inner rows together, the deeper the more (never past
            # the lip line): the openness drops below rest
            inner = self.depth * lat * half
            self.set(f"MouthPress{side}", inner * self.upper, (0, -PRESS / 2, 0))
            self.set(f"MouthPress{side}", inner * self.lower, (0, PRESS / 2, 0))
            corner = self.gauss(sign * CORNER_X, MOUTH_Y, 0.013, 0.011)
            self.set(f"MouthSmile{side}", corner, (sign * 0.008, 0.009, -0.004))
            self.set(f"MouthSmile{side}", self.gauss(sign * 0.040, -0.015, 0.014, 0.014),
                     (sign * 0.002, 0.003, 0.003))
            self.set(f"MouthFrown{side}", corner, (0, -0.007, -0.001))
            self.set(f"MouthStretch{side}", corner, (sign * 0.009, -0.002, -0.002))
            self.set(f"MouthDimple{side}", corner, (sign * 0.003, 0, -0.004))
            self.set(f"Mouth{side}", mouth, (sign * 0.008, 0, 0))

    def face(self, jaw_weight: np.ndarray) -> None:
        """Jaw sideways and forward, cheeks, nose and brows."""
        for side, sign in (("Left", 1.0), ("Right", -1.0)):
            self.set(f"Jaw{side}", jaw_weight, (sign * 0.007, 0, 0))
            puff = self.gauss(sign * 0.042, -0.030, 0.016, 0.016)
            self.set("CheekPuff", puff, (sign * 0.006, 0, 0.006))
            self.set(f"CheekSquint{side}", self.gauss(sign * 0.038, 0.010, 0.014, 0.008),
                     (0, 0.004, 0.001))
            self.set(f"NoseSneer{side}", self.gauss(sign * 0.011, -0.002, 0.007, 0.010),
                     (0, 0.004, 0.001))
            self.set(f"BrowDown{side}", self.gauss(sign * 0.030, 0.048, 0.020, 0.010),
                     (-sign * 0.002, -0.006, 0.001))
            self.set("BrowInnerUp", self.gauss(sign * 0.014, 0.048, 0.012, 0.012),
                     (0, 0.008, 0))
            self.set(f"BrowOuterUp{side}", self.gauss(sign * 0.046, 0.046, 0.014, 0.011),
                     (0, 0.008, 0))
        self.set("JawForward", jaw_weight, (0, 0, 0.007))

    def eyes(self) -> None:
        parts, points = self.head.parts, self.points
        for side, sign in (("Left", 1.0), ("Right", -1.0)):
            pupil = parts[f"pupil{side}"][0]
            centre = points[pupil] - [0, 0, EYE_RADIUS]
            ball = np.r_[parts[f"eye{side}"], pupil]
            upper, lower = parts[f"upper_lid{side}"], parts[f"lower_lid{side}"]

            def lid(name: str, index: np.ndarray, angle: float, centre=centre) -> None:
                self.out[name][index] += _turn(points[index], centre, _rotation_x(angle))

            lid(f"EyeBlink{side}", upper, 0.66)
            lid(f"EyeBlink{side}", lower, -0.08)
            lid(f"EyeWide{side}", upper, -0.22)
            lid(f"EyeSquint{side}", lower, -0.22)
            lid(f"EyeSquint{side}", upper, 0.08)
            lid(f"BrowDown{side}", upper, 0.08)
            lid(f"CheekSquint{side}", lower, -0.08)
            above = self.gauss(sign * EYE_CENTRE[0], EYE_CENTRE[1] + 0.013, 0.012, 0.005)
            self.set(f"EyeBlink{side}", above, (0, -0.0015, 0))
            self.set(f"EyeWide{side}", above, (0, 0.002, 0))
            self.set(f"EyeSquint{side}", self.gauss(sign * EYE_CENTRE[0], EYE_CENTRE[1] - 0.014,
                                                    0.012, 0.005), (0, 0.0025, 0))
            for look, rotation in (("Up", _rotation_x(-0.3)), ("Down", _rotation_x(0.3)),
                                   ("In", _rotation_y(-sign * 0.35)),
                                   ("Out", _rotation_y(sign * 0.35))):
                self.out[f"EyeLook{look}{side}"][ball] = _turn(points[ball], centre, rotation)


def head_targets(head: Head, skin: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One (V, 3) displacement field per ARKit-51 channel."""
    fields = _Fields(head, skin)
    weight = fields.jaw_weight()
    jaw = fields.jaw()
    fields.mouth_close(jaw)
    fields.lips()
    fields.face(weight)
    fields.eyes()
    return fields.out


def head_sets(head: Head, skin: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The vertex sets losses and metrics read: `mouth` (both lip lines and the inner lip
    rows), `lips` (the lip region: within 35 × 22 mm of the mouth's centre on the face, and the
    inner lips) and `upper` (the face's skin above the nose's base, and the eyelids)."""
    parts = head.parts
    inner = [parts[f"{side}_inner{k}"] for side in ("upper", "lower")
             for k in range(len(_INNER_LIP))]
    mouth = np.concatenate([skin["grid"][_MOUTH_ROW, skin["span"]], parts["lower_line"],
                            *inner])
    points, _, _ = head.mesh()
    grid = parts["skin"]
    x, y, z = points[grid].T
    near = grid[(z > 0) & ((x / 0.035) ** 2 + ((y - MOUTH_Y) / 0.022) ** 2 <= 1)]
    lips = np.union1d(near, mouth)
    lids = [parts[f"{lid}_lid{side}"] for lid in ("upper", "lower") for side in ("Left", "Right")]
    upper = np.concatenate([grid[(y > -0.005) & (z > 0.02)], *lids])
    return {"mouth": np.unique(mouth), "lips": lips, "upper": np.sort(upper)}
