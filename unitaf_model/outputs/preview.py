"""Previews that show the lip sync: each system's face from the front and three-quarter views,
over a strip of its mouth curves, and a contact sheet of the bilabial closures.

- `preview_frames`: per frame, one panel per system (ground truth | prediction in
  `eval --video`, the face alone in `animate`/`infer --video`), each the front and the
  three-quarter view side by side under the system's label, over a scrolling strip of the
  last and next `STRIP_SECONDS / 2` seconds: JawOpen, MouthClose and the rig's mouth openness
  (scaled so that rest is 0 and JawOpen = 1 is 1), the /p b m/ intervals shaded, the words
  as captions at their times (the one being spoken brighter), a cursor at the present.
- `write_preview_video`: those frames as an MP4 at the face's frame rate with the audio;
  `write_face_video` (one face, `animate`/`infer --video`) and `write_comparison_video`
  (ground truth | prediction, `eval --video`) call it.
- `write_closure_sheet`: a PNG with one row per /p b m/ interval: the lips close up at the
  interval's most closed ground-truth frame, ground truth and prediction side by side.

Faces are drawn by `unitaf_model.outputs.render` (EGL or the numpy rasteriser), the strip
with numpy, text once per word with matplotlib's Agg canvas.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from unitaf_model.model.rig import Rig, match_channels
from unitaf_model.outputs.render import (
    BACKGROUND,
    VIEWS,
    Backend,
    _to_uint8,
    frame_region,
    frame_rig,
    label_band,
    open_rasterizer,
    rig_frames,
    write_video,
)

STRIP_SECONDS = 4.0
STRIP_HEIGHT = 112
CAPTION_HEIGHT = 20
LABEL_HEIGHT = 24
CURVES = {"JawOpen": (0.95, 0.78, 0.25), "MouthClose": (0.35, 0.80, 0.95),
          "openness": (0.95, 0.95, 0.95)}
BILABIAL_SHADE = (0.28, 0.22, 0.40)
SEPARATOR = 90  # grey line at the right edge of each panel beside another


@dataclass
class Timeline:
    """What the strip shows besides the curves: (start, end) seconds of the /p b m/ phones and
    (word, start, end) of the words."""

    bilabials: Sequence[tuple[float, float]] = ()
    words: Sequence[tuple[str, float, float]] = field(default_factory=tuple)


def openness_curve(rig: Rig, face: np.ndarray, channels: Sequence[str]) -> np.ndarray:
    """The rig's mouth openness of each frame, 0 at rest and 1 with JawOpen = 1."""
    weights = match_channels(face, channels, rig.channels)
    reference = np.zeros((2, len(rig.channels)), np.float32)
    reference[1, rig.channels.index("JawOpen")] = 1.0
    rest, opened = rig.mouth_openness(reference)
    return (rig.mouth_openness(weights) - rest) / max(float(opened - rest), 1e-9)


def strip_curves(rig: Rig, face: np.ndarray, channels: Sequence[str]) -> dict[str, np.ndarray]:
    """JawOpen, MouthClose (matched by name, 0 where missing) and the normalised openness."""
    index = {name.lower(): k for k, name in enumerate(channels)}
    named = {name: face[:, index[name.lower()]] if name.lower() in index
             else np.zeros(len(face), np.float32) for name in ("JawOpen", "MouthClose")}
    return {**named,
            "openness": openness_curve(rig, face, channels)}


@lru_cache(maxsize=512)
def _text(text: str, height: int, bright: bool) -> np.ndarray:
    """Text on the background colour, as wide as it needs."""
    width = max(8, int(0.62 * height * len(text)) + 6)
    band = label_band(text, width, height, "1.0" if bright else "0.62", centred=False)
    seen = (band != _to_uint8(BACKGROUND)).any(2).any(0)
    return band[:, : int(np.flatnonzero(seen).max()) + 2] if seen.any() else band[:, :1]


def _with_legend(band: np.ndarray) -> np.ndarray:
    """The label band with the curves' names in their colours at its right end."""
    patches = [_tint(_text(name, 14, True), colour) for name, colour in CURVES.items()]
    left = band.shape[1] - sum(p.shape[1] + 8 for p in patches)
    for patch in patches:
        _paste(band, patch, left, (band.shape[0] - patch.shape[0]) // 2)
        left += patch.shape[1] + 8
    return band


def _tint(patch: np.ndarray, colour: tuple[float, float, float]) -> np.ndarray:
    """White text on the background → text in `colour` on the background."""
    back = _to_uint8(BACKGROUND).astype(np.float64)
    ink = (patch.astype(np.float64) - back).max(2, keepdims=True) / (255 - back.min())
    return _to_uint8((back + ink * (np.array(colour) * 255 - back)) / 255)


def _paste(image: np.ndarray, patch: np.ndarray, left: int, top: int) -> None:
    width = image.shape[1]
    lo, hi = max(left, 0), min(left + patch.shape[1], width)
    if hi > lo:
        image[top : top + patch.shape[0], lo:hi] = patch[:, lo - left : hi - left]


class CurveStrip:
    """The scrolling strip under one system's faces."""

    def __init__(self, width: int, fps: float, curves: dict[str, np.ndarray],
                 timeline: Timeline, height: int = STRIP_HEIGHT):
        self.width, self.height, self.fps = width, height, fps
        self.curves, self.timeline = curves, timeline
        self.rows = np.arange(height)[:, None]

    def frame(self, index: int) -> np.ndarray:
        now = index / self.fps
        times = now - STRIP_SECONDS / 2 + (np.arange(self.width) + 0.5) / self.width \
            * STRIP_SECONDS
        image = np.empty((self.height, self.width, 3), np.uint8)
        image[:] = _to_uint8(BACKGROUND)
        inside = np.zeros(self.width, bool)
        for start, end in self.timeline.bilabials:
            inside |= (times >= start) & (times < end)
        image[CAPTION_HEIGHT:, inside] = _to_uint8(np.array(BILABIAL_SHADE))
        top, plot = CAPTION_HEIGHT + 4, self.height - CAPTION_HEIGHT - 8
        for name, values in self.curves.items():
            self._line(image, times, values, top, plot, _to_uint8(np.array(CURVES[name])))
        image[CAPTION_HEIGHT:, self.width // 2] = 200
        self._captions(image, times, now)
        return image

    def _line(self, image: np.ndarray, times: np.ndarray, values: np.ndarray, top: int,
              plot: int, colour: np.ndarray) -> None:
        frame_times = np.arange(len(values)) / self.fps
        known = (times >= 0) & (times <= frame_times[-1])
        level = np.interp(times, frame_times, np.clip(values, -0.1, 1.1))
        row = top + (1.0 - level) * plot
        following = np.r_[row[1:], row[-1]]
        low, high = np.minimum(row, following) - 0.8, np.maximum(row, following) + 0.8
        mask = (self.rows >= low[None]) & (self.rows <= high[None]) & known[None]
        image[mask] = colour

    def _captions(self, image: np.ndarray, times: np.ndarray, now: float) -> None:
        """Each word from its start time, pushed right where the one before it is still
        written."""
        span = times[-1] - times[0]
        free = -self.width
        for word, start, end in self.timeline.words:
            if end < times[0] - STRIP_SECONDS or start > times[-1]:
                continue
            patch = _text(word, CAPTION_HEIGHT - 2, start <= now < end)
            left = max(int(round((start - times[0]) / span * self.width)), free)
            _paste(image, patch, left, 1)
            free = left + patch.shape[1] + 6


def preview_frames(rig: Rig, faces: dict[str, np.ndarray], channels: Sequence[str],
                   fps: float, timeline: Timeline | None = None, size: int = 256,
                   backend: Backend = "auto") -> Iterator[np.ndarray]:
    """Frames of the preview of one or more equally long faces, `{label: (T, C) face}`."""
    lengths = {len(face) for face in faces.values()}
    if len(lengths) != 1:
        raise ValueError(f"the faces differ in length: { {k: len(v) for k, v in faces.items()} }")
    timeline = timeline or Timeline()
    with ExitStack() as stack:
        rasterizers = [stack.enter_context(open_rasterizer(
            rig.faces, frame_rig(rig, size, size, view), backend, rig.colors)) for view in VIEWS]
        panels = []
        for label, face in faces.items():
            strip = CurveStrip(size * len(VIEWS), fps, strip_curves(rig, face, channels),
                               timeline)
            band = _with_legend(label_band(label, size * len(VIEWS), LABEL_HEIGHT))
            panels.append((band, strip, rig_frames(rig, face, channels)))
        for index in range(lengths.pop()):
            columns = []
            for band, strip, vertices in panels:
                mesh = next(vertices)
                views = np.concatenate([r.render(mesh) for r in rasterizers], 1)
                panel = np.concatenate([band, views, strip.frame(index)])
                panel[:, -2:] = SEPARATOR if len(panels) > 1 else panel[:, -2:]
                columns.append(panel)
            yield np.concatenate(columns, 1)


def write_preview_video(path: Path, rig: Rig, faces: dict[str, np.ndarray],
                        channels: Sequence[str], fps: float, audio: np.ndarray | None = None,
                        sample_rate: int | None = None, timeline: Timeline | None = None,
                        size: int = 256, backend: Backend = "auto") -> Path:
    """The preview as an MP4 at the faces' frame rate with the audio."""
    return write_video(path, preview_frames(rig, faces, channels, fps, timeline, size,
                                            backend), fps, audio, sample_rate)


def closure_frames(truth_openness: np.ndarray, bilabials: Sequence[tuple[float, float]],
                   fps: float) -> list[tuple[int, tuple[float, float]]]:
    """Per /p b m/ interval inside the clip, its most closed ground-truth frame."""
    from unitaf_model.evaluation.metrics import phone_frames

    found = []
    for start, end in bilabials:
        frames = phone_frames(start, end, fps, len(truth_openness))
        if len(frames):
            found.append((int(frames[np.argmin(truth_openness[frames])]), (start, end)))
    return found


def write_closure_sheet(path: Path, rig: Rig, faces: dict[str, np.ndarray],
                        channels: Sequence[str], fps: float, timeline: Timeline,
                        size: int = 160, limit: int = 12, backend: Backend = "auto"
                        ) -> Path | None:
    """A PNG, one row per /p b m/ interval (at most `limit`): the time and word, then each
    system's lips at the interval's most closed frame of the first face (ground truth).
    None when the clip has no such interval."""
    from matplotlib.image import imsave

    first = next(iter(faces.values()))
    picked = closure_frames(openness_curve(rig, first, channels), timeline.bilabials,
                            fps)[:limit]
    if not picked:
        return None
    camera = frame_region(rig, rig.lip_idx, size, size)
    weights = {label: match_channels(face, channels, rig.channels)
               for label, face in faces.items()}
    header = [label_band("interval", size, LABEL_HEIGHT)] + [
        label_band(label, size, LABEL_HEIGHT) for label in faces]
    rows = [np.concatenate(header, 1)]
    with open_rasterizer(rig.faces, camera, backend, rig.colors) as rasterizer:
        for frame, (start, end) in picked:
            word = next((w for w, s, e in timeline.words if s <= (start + end) / 2 < e), "")
            tile = np.empty((size, size, 3), np.uint8)
            tile[:] = _to_uint8(BACKGROUND)
            _paste(tile, _text(f"{start:.2f}-{end:.2f} s", 18, True), 6, size // 2 - 22)
            _paste(tile, _text(word, 18, False), 6, size // 2 + 2)
            cells = [tile] + [rasterizer.render(rig.meanshape + np.tensordot(
                w[frame], rig.blendshape, 1)) for w in weights.values()]  # one frame each
            rows.append(np.concatenate(cells, 1))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    imsave(path, np.concatenate(rows))
    return Path(path)


def write_face_video(path: Path, rig: Rig, face: np.ndarray, channels: Sequence[str],
                     fps: float, audio: np.ndarray | None = None,
                     sample_rate: int | None = None, size: int = 256,
                     backend: Backend = "auto", label: str = "face") -> Path:
    """MP4 of a face track on the rig, front and three-quarter views over its mouth curves,
    with its audio (`unitaf animate --video`)."""
    return write_preview_video(path, rig, {label: face}, channels, fps, audio, sample_rate,
                               size=size, backend=backend)


def write_comparison_video(path: Path, rig: Rig, truth: np.ndarray, prediction: np.ndarray,
                           channels: Sequence[str], fps: float, audio: np.ndarray | None = None,
                           sample_rate: int | None = None, size: int = 256,
                           labels: tuple[str, str] = ("ground truth", "prediction"),
                           backend: Backend = "auto", timeline=None) -> Path:
    """MP4 of ground truth | prediction side by side, each from the front and three-quarter
    views over its mouth curves, the /p b m/ intervals and words of `timeline`
    (`preview.Timeline`), with the clip's audio (`eval --video`)."""
    if truth.shape != prediction.shape:
        raise ValueError(f"ground truth {truth.shape} and prediction {prediction.shape} differ")
    return write_preview_video(path, rig, dict(zip(labels, (truth, prediction), strict=True)),
                               channels, fps, audio, sample_rate, timeline, size, backend)
