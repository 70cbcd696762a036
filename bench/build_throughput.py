"""Build throughput against bare faster-whisper, side by side on the same audio.

For 1 and 2 ASR workers: (a) bare faster-whisper (batched pipeline, word timestamps, one
process per worker, one CPU thread each) over the corpus files, and (b) the full
`unitaf-data build` (Ray start, decode, ASR actors, segmentation, quality checks, FLAC
encoding and shard writing). Prints audio seconds per wall second for each and the ratios.

    python bench/build_throughput.py --minutes 8
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import soundfile as sf


def _bare_asr(paths: list[str], threads: int) -> int:
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    from unitaf_data.asr import DEFAULT_MODEL, resolve_model

    model = WhisperModel(resolve_model(DEFAULT_MODEL), device="cpu", compute_type="int8",
                         cpu_threads=threads)
    pipeline = BatchedInferencePipeline(model)
    words = 0
    for path in paths:
        segments, _ = pipeline.transcribe(path, language="en", batch_size=8,
                                          word_timestamps=True)
        words += sum(len(s.words or []) for s in segments)
    return words


def bare_asr_seconds(paths: list[str], workers: int) -> float:
    """Wall seconds for `workers` processes to load the model and transcribe all files."""
    shares = [paths[i::workers] for i in range(workers)]
    start = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        list(pool.map(_bare_asr, shares, [1] * workers))
    return time.perf_counter() - start


def build_seconds(corpus: Path, minutes: float, out: Path, workers: int) -> tuple[float, dict]:
    """Wall seconds of a full build (Ray started inside the timing) and its stage times."""
    import ray

    from unitaf_pipelines.build import BuildConfig, run_build

    if ray.is_initialized():
        ray.shutdown()
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    summary = run_build(BuildConfig(source="demo", input_dir=corpus, out_dir=out,
                                    demo_minutes=minutes, seed=0, asr_workers=workers,
                                    progress=False))
    return time.perf_counter() - start, summary.stage_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=8.0, help="demo audio to use")
    minutes = parser.parse_args().minutes

    from unitaf_data.sources import demo

    work = Path(tempfile.mkdtemp(prefix="unitaf-bench-"))
    corpus = demo.prepare(work / "corpus", minutes=minutes, seed=0)
    paths = sorted(str(p) for p in corpus.glob("*.wav"))
    audio_seconds = sum(sf.info(p).duration for p in paths)
    print(f"{len(paths)} files, {audio_seconds:.1f} s of audio\n")
    rows = {}
    for workers in (1, 2):
        bare = audio_seconds / bare_asr_seconds(paths, workers)
        seconds, stages = build_seconds(corpus, minutes, work / f"out{workers}", workers)
        rows[workers] = (bare, audio_seconds / seconds, stages)
    print("| ASR workers | bare faster-whisper (audio s / wall s) | full build | build / bare "
          "| build stages (s) |")
    print("|---|---|---|---|---|")
    for workers, (bare, built, stages) in rows.items():
        breakdown = ", ".join(f"{k} {v:.1f}" for k, v in stages.items() if v >= 0.05)
        print(f"| {workers} | {bare:.1f} | {built:.1f} | {built / bare:.2f} | {breakdown} |")
    print(f"\n2 workers / 1 worker: bare {rows[2][0] / rows[1][0]:.2f}, "
          f"build {rows[2][1] / rows[1][1]:.2f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
