"""The same build to a local folder and to an S3-compatible server, in one run.

A demo corpus is synthesised once; (a) `unitaf-data build --input CORPUS --out DIR` on
local disk, (b) the same corpus uploaded (untimed) to moto's S3 server on 127.0.0.1 and
built with `--input s3://corpus/demo --out s3://datasets/demo`: every task reads its
recording from S3 and writes its shard there, the driver writes markers and records there.
Builds alternate (local, S3, local, S3 ... for `--repeats`), each with a fresh local Ray
started inside the timing. Prints wall seconds and stage times of each, the S3 / local
ratio of the medians (target: at most 1.10), and checks the shards are byte-identical.
The S3 server runs on the same CPUs as the build, so its own work is part of the cost.

    python bench/storage_build.py --minutes 4 --repeats 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from object_store import environment, s3_bytes, s3_server, upload_tree  # noqa: E402


def build(corpus: str | Path, out: str | Path, minutes: float) -> tuple[float, dict]:
    """Wall seconds of one build (Ray started inside the timing) and its stage times."""
    import ray

    from unitaf_pipelines.build import BuildConfig, run_build

    if ray.is_initialized():
        ray.shutdown()
    start = time.perf_counter()
    summary = run_build(BuildConfig(source="demo", input_dir=corpus, out_dir=out,
                                    demo_minutes=minutes, seed=0, progress=False))
    seconds = time.perf_counter() - start
    ray.shutdown()
    return seconds, summary.stage_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    from unitaf_data.sources import demo

    work = Path(tempfile.mkdtemp(prefix="unitaf-storage-bench-"))
    corpus = demo.prepare(work / "corpus", minutes=args.minutes, seed=0)
    times: dict[str, list[float]] = {"local": [], "s3": []}
    with s3_server() as server, environment(server.env):
        for bucket in ("corpus", "datasets"):
            server.make_bucket(bucket)
        upload_tree(server, corpus, "corpus", "demo")
        for repeat in range(args.repeats):
            local_out = work / f"local-{repeat}"
            for target, source, out in (("local", corpus, local_out),
                                        ("s3", "s3://corpus/demo",
                                         f"s3://datasets/demo-{repeat}")):
                seconds, stages = build(source, out, args.minutes)
                times[target].append(seconds)
                print(f"{target:5s} build {repeat}: {seconds:6.1f} s  " + ", ".join(
                    f"{stage} {value:.1f}" for stage, value in stages.items()), flush=True)
            tars = sorted(local_out.glob("data/*/*.tar"))
            same = all(s3_bytes(server, "datasets", f"demo-{repeat}/"
                                f"{tar.relative_to(local_out).as_posix()}") == tar.read_bytes()
                       for tar in tars)
            print(f"repeat {repeat}: {len(tars)} shards, byte-identical: {same}")
    local, s3 = statistics.median(times["local"]), statistics.median(times["s3"])
    print(f"\n{args.minutes:g} min demo corpus: local {local:.1f} s, S3 {s3:.1f} s, "
          f"S3 / local = {s3 / local:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
