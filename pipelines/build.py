"""`unitaf-data build` on Ray: wires the stage functions of `unitaf_data` into a resumable run.

Units of work, each written under a temporary name, renamed, and only then marked done:
1. demo corpus (only for `--source demo` without `--input`): one synthesis task per recording;
2. transcribe: one recording → `.build/recordings/{id}.json` (load task → ASR actor pool →
   plan task);
3. write: one shard → `data/{split}/{split}-NNNNNN.tar` + `.build/shards/{name}.json`;
4. finish: manifest, rejected, unitaf.json and dataset card from the markers.
A rerun with the same settings skips every unit already marked, so a killed build resumes
and ends with the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from unitaf_data import card, shards, stages
from unitaf_data.asr import AsrSettings
from unitaf_data.dataset import Dataset, DatasetLayout, split_order, write_json
from unitaf_data.quality import QualityRules
from unitaf_data.schema import ClipMeta, RecordingRef, Rejection, ShardInfo
from unitaf_data.segment import SegmentSettings
from unitaf_data.sources import SourceOptions, demo, get_source
from unitaf_pipelines.runtime import (
    actor_options,
    actor_pool,
    init_ray,
    read_json,
    run_on_actors,
    stage_progress,
)

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class BuildConfig:
    source: str
    out_dir: Path
    input_dir: Path | None = None
    demo_minutes: float = 4.0
    seed: int = 0
    source_options: SourceOptions = field(default_factory=SourceOptions)
    asr: AsrSettings = field(default_factory=AsrSettings)
    asr_workers: int | None = None  # default: one per CPU (CPU ASR) or per GPU
    segment: SegmentSettings = field(default_factory=SegmentSettings)
    quality: QualityRules = field(default_factory=QualityRules)
    text_source: str = "auto"
    shard_size_mb: float = 500.0
    shard_max_clips: int = 10_000
    ray_address: str | None = None
    overwrite: bool = False
    strict: bool = False  # any rejection makes the run fail (checked by the caller)
    progress: bool = True

    def output_settings(self) -> dict[str, Any]:
        """Everything that changes the bytes of the dataset (recorded; checked on resume)."""
        settings = asdict(self)
        for transient in ("out_dir", "asr_workers", "ray_address", "overwrite", "progress",
                          "strict"):
            settings.pop(transient)
        settings["input_dir"] = str(self.input_dir) if self.input_dir else None
        if self.source != "demo":
            settings.pop("demo_minutes")
        return settings


@dataclass
class BuildSummary:
    out_dir: Path
    recordings: int = 0
    recordings_rejected: int = 0
    clips: int = 0
    clips_rejected: int = 0
    input_hours: float = 0.0
    clip_hours: float = 0.0
    shards: int = 0
    rejected_by_reason: Counter = field(default_factory=Counter)
    stage_seconds: dict[str, float] = field(default_factory=dict)


def run_build(config: BuildConfig) -> BuildSummary:
    """Build (or resume) the dataset described by `config`; returns the run summary."""
    work = _prepare_out_dir(config)
    summary = BuildSummary(config.out_dir)
    clock = time.perf_counter()
    init_ray(config.ray_address)
    summary.stage_seconds["ray start"] = time.perf_counter() - clock
    with stage_progress(config.progress) as progress:
        input_dir = _timed(summary, "prepare input", lambda: _input_dir(config, work, progress))
        refs = get_source(config.source).discover(input_dir, config.source_options)
        if not refs:
            raise FileNotFoundError(f"no recordings found for source {config.source!r} in "
                                    f"{input_dir}")
        plans = _timed(summary, "transcribe", lambda: _transcribe_all(config, refs, work,
                                                                      progress))
        written = _timed(summary, "write shards", lambda: _write_all(config, plans, work,
                                                                     progress))
    _timed(summary, "finish", lambda: _finish(config, plans, written, summary))
    return summary


def _timed(summary: BuildSummary, stage: str, run):
    clock = time.perf_counter()
    result = run()
    summary.stage_seconds[stage] = time.perf_counter() - clock
    return result


def _prepare_out_dir(config: BuildConfig) -> Path:
    """Create the output folder, or check that an existing one was begun with these settings."""
    if config.overwrite and config.out_dir.exists():
        shutil.rmtree(config.out_dir)
    work = DatasetLayout(config.out_dir).work
    settings_path = work / "settings.json"
    settings = config.output_settings()
    if settings_path.exists():
        if read_json(settings_path) != settings:
            raise ValueError(
                f"{config.out_dir} was built with other settings (see {settings_path}); "
                "choose a new --out or pass --overwrite")
        log.info("resuming the build in %s", config.out_dir)
    elif config.out_dir.exists() and any(config.out_dir.iterdir()):
        raise FileExistsError(f"{config.out_dir} exists and is not a unitaf build; "
                              "choose a new --out or pass --overwrite")
    write_json(settings_path, settings)
    return work


# --- stage 1: the demo corpus ---------------------------------------------------------------


def _input_dir(config: BuildConfig, work: Path, progress) -> Path:
    if config.source != "demo":
        if config.input_dir is None:
            raise ValueError(f"--input is required for --source {config.source}")
        return config.input_dir
    corpus_dir = config.input_dir or work / "demo-corpus"
    if demo.corpus_is_complete(corpus_dir, config.demo_minutes, config.seed):
        return corpus_dir
    import ray

    corpus_dir.mkdir(parents=True, exist_ok=True)
    plans = demo.plan_corpus(config.demo_minutes, config.seed)
    task = progress.add_task("synthesise demo", total=len(plans), hours=0.0)
    # max_calls=1: a fresh worker process per recording, which eSpeak needs to be reproducible
    synthesize = ray.remote(num_cpus=1, max_calls=1)(demo.synthesize_recording)
    pending = [synthesize.remote(plan, corpus_dir, config.seed) for plan in plans]
    entries = []
    for ref in pending:  # in plan order: the index is written in a fixed order
        entries.append(ray.get(ref))
        progress.update(task, advance=1, hours=sum(e["duration"] for e in entries) / 3600)
    demo.write_index(corpus_dir, config.demo_minutes, config.seed, entries)
    return corpus_dir


# --- stage 2: load, transcribe and plan each recording --------------------------------------


def _asr_worker_class():
    import ray

    from unitaf_data.asr import Transcriber

    @ray.remote
    class AsrWorker:
        """One faster-whisper model held for the whole run."""

        def __init__(self, settings: AsrSettings) -> None:
            self.transcriber = Transcriber(settings)

        def transcribe(self, recording):
            if isinstance(recording, Rejection):
                return None
            return self.transcriber.transcribe(recording.audio)

    return AsrWorker


def _plan(recording, transcript, config: BuildConfig):
    if isinstance(recording, Rejection):
        return {"rejection": recording.to_dict()}
    plan = stages.plan_recording(recording, transcript, config.segment, config.quality,
                                 config.text_source)
    return {"plan": plan.to_dict()}


def _transcribe_all(config: BuildConfig, refs: list[RecordingRef], work: Path,
                    progress) -> list[stages.RecordingPlan | Rejection]:
    """Run every recording without a marker through load → ASR → plan; returns all results."""
    def marker(ref: RecordingRef) -> Path:
        return work / "recordings" / f"{ref.id}.json"

    todo = [ref for ref in refs if not marker(ref).exists()]
    task = progress.add_task("transcribe", total=len(refs), completed=len(refs) - len(todo),
                             hours=0.0)
    if todo:
        _run_asr_pool(config, todo, marker, progress, task)
    results = []
    for ref in refs:
        saved = read_json(marker(ref))
        results.append(Rejection(**saved["rejection"]) if "rejection" in saved
                       else stages.RecordingPlan.from_dict(saved["plan"]))
    return stages.one_face_type(results)


def _run_asr_pool(config: BuildConfig, todo: list[RecordingRef], marker, progress, task) -> None:
    """Load tasks feed the ASR actor pool; plan tasks turn each transcript into a plan."""
    import ray

    workers, options = actor_options(config.asr.device, config.asr_workers)
    load = ray.remote(num_cpus=0.5)(stages.load_recording)
    plan = ray.remote(num_cpus=0.5)(_plan)
    hours = 0.0

    def submit(actor, ref: RecordingRef):
        recording = load.remote(ref, config.source_options.face_fps_out,
                                config.quality.min_rms_db)
        return plan.remote(recording, actor.transcribe.remote(recording), config)

    def done(ref: RecordingRef, result: dict) -> None:
        nonlocal hours
        write_json(marker(ref), result)
        hours += result.get("plan", {}).get("duration", 0.0) / 3600
        progress.update(task, advance=1, hours=hours)

    with actor_pool(_asr_worker_class(), workers, options, config.asr) as actors:
        run_on_actors(actors, todo, submit, done)


# --- stage 3: shards ------------------------------------------------------------------------


def _write_all(config: BuildConfig, plans: list, work: Path, progress
               ) -> tuple[list[dict[str, Any]], dict[str, ShardInfo]]:
    """Write every shard without a marker; returns all manifest rows and shard records."""
    import ray

    planned = [(plan, meta) for plan in plans if isinstance(plan, stages.RecordingPlan)
               for meta in plan.clips]
    clips: dict[str, tuple[RecordingRef, ClipMeta]] = {
        meta.key: (plan.ref, meta) for plan, meta in planned}
    shard_plans = shards.plan_shards(
        [shards.PlannedClip(meta.key, meta.split, shards.estimated_bytes(
            meta.duration, meta.num_frames, len(plan.channels))) for plan, meta in planned],
        config.shard_size_mb, config.shard_max_clips)

    def marker(plan: shards.ShardPlan) -> Path:
        return work / "shards" / f"{plan.ref.name}.json"

    todo = [s for s in shard_plans if not marker(s).exists()]
    task = progress.add_task("write shards", total=len(shard_plans),
                             completed=len(shard_plans) - len(todo), hours=0.0)
    layout = DatasetLayout(config.out_dir)
    write = ray.remote(num_cpus=1)(stages.write_shard)
    pending = {
        write.remote(s.ref, [clips[k] for k in s.keys], layout.shard(s.ref),
                     config.source_options.face_fps_out): s
        for s in todo
    }
    hours = 0.0
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        shard = pending.pop(done[0])
        rows, record = ray.get(done[0])
        write_json(marker(shard), {"rows": rows, "record": record.to_dict()})
        hours += sum(row["duration"] for row in rows) / 3600
        progress.update(task, advance=1, hours=hours)
    saved = {s.ref.id: read_json(marker(s)) for s in shard_plans}
    return ([row for done in saved.values() for row in done["rows"]],
            {shard: ShardInfo.from_dict(done["record"]) for shard, done in saved.items()})


# --- stage 4: tables, info and card ---------------------------------------------------------


def _finish(config: BuildConfig, plans: list, written: tuple[list[dict[str, Any]],
            dict[str, ShardInfo]], summary: BuildSummary) -> None:
    rows, records = written
    layout = DatasetLayout(config.out_dir)
    recording_plans = [p for p in plans if isinstance(p, stages.RecordingPlan)]
    rejections = [p for p in plans if isinstance(p, Rejection)] + [
        r for p in recording_plans for r in p.rejections]
    rows.sort(key=lambda r: (split_order(r["split"]), r["split"], r["key"]))
    card.write_table(layout.manifest, rows)
    card.write_table(layout.rejected, [r.to_dict() for r in rejections],
                     card.REJECTED_COLUMNS)
    if not rows:
        raise RuntimeError(f"no clip survived: see {layout.rejected}")
    face = recording_plans[0]
    info = card.dataset_info(
        config.source, (face.face_type, tuple(face.channels), face.fps),
        config.output_settings(), rows, rejections, len(plans),
        sum(p.duration for p in recording_plans) / 3600, records)
    card.write_info(layout, info)
    card.write_card(Dataset.open_folder(layout.root))
    counts = info.counts
    summary.recordings = counts["recordings"]
    summary.recordings_rejected = counts["recordings_rejected"]
    summary.clips, summary.clips_rejected = counts["clips"], counts["clips_rejected"]
    summary.clip_hours, summary.input_hours = counts["hours"], counts["input_hours"]
    summary.shards = counts["shards"]
    summary.rejected_by_reason = Counter(counts["rejected_by_reason"])
    log.info("built %d clips (%.3f h) in %d shards; %d rejected", summary.clips,
             summary.clip_hours, summary.shards, len(rejections))
