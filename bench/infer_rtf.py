"""Real-time factor of `infer` on IndexTTS2: speech (codes, teacher-forced latents, s2mel,
BigVGAN) and face (a UniTAF projector + UniTalker-size decoder on `gpt_layer`), and the face's
share of it, with IndexTTS2's stack at its real sizes and random weights, in the released file
formats (`tests/indextts2_models.py`), loaded by the real loaders.

A random GPT never emits its stop code, so each segment is cut at `--codes` codes (50 per
second of speech); the text has two sentences, cut into segments of 16 text tokens, so the
first chunk's latency is measured against the whole. On CPU by default, and on the GPU when
`torch.cuda.is_available()`.

    python bench/infer_rtf.py --codes 75
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from indextts2_models import write_random_indextts2  # noqa: E402

TEXT = "The quick brown fox jumps over the lazy dog. It is a sunny day near the river."
CHANNELS = 51  # ARKit


def face_model(device: str):
    """UniTAF on gpt_layer features with UniTalker-B's feature width (768)."""
    from unitaf_model.model.unitaf import UniTAF
    from unitaf_model.synthesis.indextts2 import FaceModel

    model = UniTAF("precomputed", 1024, 768, "arkit", CHANNELS, torch.zeros(CHANNELS))
    model.eval().to(device)
    identity = torch.zeros(1, dtype=torch.long, device=device)

    def face_from_features(features: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            inputs = torch.from_numpy(features)[None].to(device)
            return model(inputs, identity)[0][0].cpu().numpy()

    return FaceModel(face_from_features, fps=25.0, rest=np.zeros(CHANNELS, np.float32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes", type=int, default=75, help="codes per segment (50 per s)")
    parser.add_argument("--segment-tokens", type=int, default=16,
                        help="text tokens per segment (IndexTTS2's default is 120)")
    args = parser.parse_args()
    from unitaf_model.synthesis.indextts2 import Generation, load_synthesizer, stream

    device = "cuda" if torch.cuda.is_available() else "cpu"
    work = Path(tempfile.mkdtemp(prefix="unitaf-infer-bench-"))
    try:
        start = time.perf_counter()
        models = write_random_indextts2(work / "models", size="real", synthesis=True)
        written = time.perf_counter() - start
        start = time.perf_counter()
        synth = load_synthesizer(**{k: str(v) for k, v in models.items()}, device=device)
        loaded = time.perf_counter() - start
        t = np.arange(3 * 24_000) / 24_000
        sf.write(work / "voice.wav", (0.2 * np.sin(2 * np.pi * 180 * t)).astype(np.float32),
                 24_000)
        faces = face_model(device)
        generation = Generation(max_mel_tokens=args.codes,
                                max_text_tokens_per_segment=args.segment_tokens)
        for _ in stream(synth, faces, "Warm up.", work / "voice.wav", generation=generation):
            pass
        start = time.perf_counter()
        chunks = list(stream(synth, faces, TEXT, work / "voice.wav", generation=generation))
        total = time.perf_counter() - start
    finally:
        shutil.rmtree(work, ignore_errors=True)
    audio = sum(len(c.wav) for c in chunks) / 22_050
    speech = sum(c.speech_s for c in chunks)
    face = sum(c.face_s for c in chunks)
    print(f"device: {device}, {torch.get_num_threads()} torch threads; IndexTTS2 at real sizes, "
          f"random weights (written in {written:.0f} s, loaded in {loaded:.0f} s)")
    print(f"{len(chunks)} segments, {sum(len(c.speech.codes) for c in chunks)} codes, "
          f"{audio:.2f} s of audio (silences between segments included)")
    print("| | seconds | real-time factor |\n|---|---|---|")
    print(f"| speech + face (whole stream, conditioning included) | {total:.2f} | "
          f"{total / audio:.2f} |")
    print(f"| speech (codes, latents, s2mel, BigVGAN) | {speech:.2f} | {speech / audio:.2f} |")
    print(f"| face (UniTAF + retiming) | {face:.4f} | {face / audio:.5f} |")
    print(f"face share of speech + face: {100 * face / (speech + face):.3f} %; first chunk "
          f"after {chunks[0].ready_s:.2f} s of {total:.2f} s")


if __name__ == "__main__":
    main()
