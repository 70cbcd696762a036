"""Preview rendering speed: seconds of video written per second of wall time, for the
`eval --video` preview (ground truth | prediction, each from the front and three-quarter
views at 256 px, over the curve strip with intervals and captions, H.264 + AAC with the audio)
and the single-face `animate --video` preview, on each rasteriser (OpenGL through EGL, and
the numpy fallback). CPU seconds (all of the process's threads: llvmpipe's and x264's too) per
second of video say what an idle machine needs: under 2 on 2 cores can keep up.

The faces are the demo corpus's phoneme-driven ARKit curves for a synthetic phone timeline
(the prediction: the same with noise), on the built-in head, at 25 fps.

    python bench/render_speed.py --seconds 8
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from unitaf_data.sources.demo import face_from_phonemes
from unitaf_model.model.rig import demo_rig
from unitaf_model.outputs.preview import Timeline, write_preview_video

FPS, SAMPLE_RATE = 25.0, 16000
PHONES = ["h", "@", "l", "'oU", "_", "b", "'I", "g", "_", "m", "'a", "p", "s", "_", "w", "'I",
          "T", "_", "p", "'i", "n", "_", "b", "'e", "r", "i", "z"]


def clip(seconds: float) -> tuple[np.ndarray, np.ndarray, Timeline, np.ndarray]:
    """Ground truth, prediction, timeline and a tone, `seconds` long."""
    phones, start = [], 0.0
    while start < seconds:
        for label in PHONES:
            length = 0.09 if label[0] in "pbm" else 0.15
            phones.append((label, start, start + length))
            start += length
    frames = int(seconds * FPS)
    truth = face_from_phonemes(phones, frames, FPS, "neutral", np.random.default_rng(0))
    noise = np.random.default_rng(1).normal(0, 0.03, truth.shape)
    prediction = np.clip(truth + noise, 0, 1).astype(np.float32)
    bilabials = [(s, e) for label, s, e in phones if label[0] in "pbm" and s < seconds]
    words = [(f"w{k}", k * 0.5, k * 0.5 + 0.4) for k in range(int(seconds * 2))]
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE)
    return truth, prediction, Timeline(bilabials, words), tone.astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--backends", default="gl,numpy")
    args = parser.parse_args()
    rig = demo_rig()
    truth, prediction, timeline, tone = clip(args.seconds)
    print(f"built-in head: {len(rig.meanshape)} vertices, {len(rig.faces)} triangles; "
          f"{args.seconds:.1f} s of video at {FPS:g} fps")
    print(f"load average at the start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("| preview | backend | wall s | video s / wall s | CPU s / video s |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for backend in args.backends.split(","):
            for name, faces in (("eval: truth | prediction", {"ground truth": truth,
                                                              "prediction": prediction}),
                                ("animate: one face", {"face": prediction})):
                start, cpu = time.perf_counter(), time.process_time()
                write_preview_video(Path(folder) / "clip.mp4", rig, faces, rig.channels, FPS,
                                    tone, SAMPLE_RATE, timeline, backend=backend)
                wall, cpu = time.perf_counter() - start, time.process_time() - cpu
                print(f"| {name} | {backend} | {wall:.1f} | {args.seconds / wall:.2f} | "
                      f"{cpu / args.seconds:.2f} |")


if __name__ == "__main__":
    main()
