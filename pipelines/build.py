"""`unitaf-data build` on Ray: wires the stage functions of `unitaf_data` into a resumable run.

The dataset (`--out`) and the corpus (`--input`) may be local folders or object-store URLs
(`s3://`, `gs://`): every task reads its inputs and writes its outputs through the storage
layer itself, wherever Ray placed it; the driver plans, collects small results and writes
the markers and records. Units of work, each written whole and only then marked done:
1. demo corpus (only for `--source demo` without `--input`): one synthesis task per recording;
2. transcribe: one recording → `.build/recordings/{id}.json` (load task → ASR actor pool →
   plan task);
3. write: one shard → `data/{split}/{split}-NNNNNN.tar` + `.build/shards/{name}.json`;
4. finish: manifest, rejected, unitaf.json and dataset card from the markers.
A rerun with the same settings skips every unit already marked, so a killed build resumes
and ends with the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from unitaf_data import card, owned, shards, stages
from unitaf_data.asr import AsrSettings
from unitaf_data.dataset import (
    Dataset,
    DatasetLayout,
    Storage,
    is_url,
    read_json_file,
    split_order,
    write_json,
)
from unitaf_data.quality import QualityRules
from unitaf_data.schema import ClipMeta, RecordingRef, Rejection, ShardInfo
from unitaf_data.segment import SegmentSettings
from unitaf_data.sources import SOURCE_NAMES, SourceOptions, demo, get_source, read_names
from unitaf_pipelines.runtime import (
    DEFAULT_STALL_TIMEOUT_S,
    actor_nodes,
    actor_options,
    actor_pool,
    init_ray,
    node_label,
    run_on_actors,
    run_tasks,
    stage_progress,
    wait_one,
)

log = logging.getLogger(__name__)

TEXT_SOURCES = ("auto", "asr", "reference")
URL_SOURCES = ("beat2", "demo")  # sources whose corpus may be at a storage URL
FIRST_REJECTIONS = 5  # rejected items a summary shows with their reasons


@dataclass(frozen=True)
class BuildConfig:
    source: str
    out_dir: Path | str  # a folder, or an object-store URL
    input_dir: Path | str | None = None  # a folder, a URL, or (BEAT2) a Hub id
    demo_minutes: float = 4.0
    seed: int = 0
    source_options: SourceOptions = field(default_factory=SourceOptions)
    asr: AsrSettings = field(default_factory=AsrSettings)
    asr_workers: int | None = None  # default: one per CPU (CPU ASR) or per GPU
    segment: SegmentSettings = field(default_factory=SegmentSettings)
    quality: QualityRules = field(default_factory=QualityRules)
    text_source: str = "auto"  # asr, reference (the corpus transcript) or auto (it when present)
    shard_size_mb: float = 500.0
    shard_max_clips: int = 10_000
    ray_address: str | None = None
    stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S  # no result for this long: an error
    overwrite: bool = False
    strict: bool = False  # any rejection makes the run fail (checked by the caller)
    progress: bool = True

    def output_settings(self) -> dict[str, Any]:
        """Everything that changes the bytes of the dataset (recorded; checked on resume)."""
        settings = asdict(self)
        for transient in ("out_dir", "asr_workers", "ray_address", "overwrite", "progress",
                          "strict", "stall_timeout_s"):
            settings.pop(transient)
        settings["input_dir"] = str(self.input_dir) if self.input_dir else None
        if self.source != "demo":
            settings.pop("demo_minutes")
        return settings


@dataclass(frozen=True)
class RejectionSummary:
    """What rejected.parquet says, in short: counts by (what, reason) and the first items."""

    recordings: int = 0
    clips: int = 0
    by_reason: dict[tuple[str, str], int] = field(default_factory=dict)  # most frequent first
    first: tuple[Rejection, ...] = ()

    @staticmethod
    def of(rejections: list[Rejection], first: int = FIRST_REJECTIONS) -> RejectionSummary:
        counts = Counter((r.what, r.reason) for r in rejections)
        return RejectionSummary(
            recordings=sum(r.what == "recording" for r in rejections),
            clips=sum(r.what == "clip" for r in rejections),
            by_reason=dict(sorted(counts.items(), key=lambda item: (-item[1], item[0]))),
            first=tuple(rejections[:first]))


class NothingSurvived(RuntimeError):
    """Every recording or clip was rejected; `rejections` says why."""

    def __init__(self, message: str, rejections: RejectionSummary) -> None:
        super().__init__(message)
        self.rejections = rejections


@dataclass
class BuildSummary:
    out_dir: Path | str
    recordings: int = 0
    clips: int = 0
    input_hours: float = 0.0
    clip_hours: float = 0.0
    shards: int = 0
    rejections: RejectionSummary = field(default_factory=RejectionSummary)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    per_node: dict[str, dict[str, float]] = field(default_factory=dict)  # this run's work

    def count(self, node: str, what: str, amount: float) -> None:
        totals = self.per_node.setdefault(node, {})
        totals[what] = totals.get(what, 0) + amount


def check_config(config: BuildConfig) -> None:
    """Refuse what cannot work before anything starts (no folder written, no Ray): an
    unknown source or text mode, a missing or absent --input, unreadable option files, a
    speaker pattern without its group, values out of range. Errors name the option."""
    get_source(config.source)
    if config.text_source not in TEXT_SOURCES:
        raise ValueError(f"--text must be one of {', '.join(TEXT_SOURCES)}, not "
                         f"{config.text_source!r}")
    if config.source != "demo":
        _check_input(config)
    options = config.source_options
    for flag, path in (("--flame-to-arkit", options.flame_to_arkit),
                       ("--arkit-names", options.arkit_names)):
        if path is not None and not is_url(path) and not Path(path).is_file():
            raise FileNotFoundError(f"{flag} {path}: no such file")
    if options.channel_names is not None:
        _check_channel_names(Path(options.channel_names))
    for flag, pattern, group in (("--speaker-pattern", options.speaker_pattern, "speaker"),
                                 ("--split-pattern", options.split_pattern, "split")):
        if pattern is not None:
            _check_pattern(flag, pattern, group)
    for flag, value in (("--face-fps", options.face_fps), ("--face-fps-out",
                        options.face_fps_out), ("--demo-minutes", config.demo_minutes),
                        ("--shard-size-mb", config.shard_size_mb),
                        ("--shard-max-clips", config.shard_max_clips)):
        if value is not None and value <= 0:
            raise ValueError(f"{flag} must be positive, not {value}")
    if config.segment.min_seconds >= config.segment.max_seconds:
        raise ValueError(f"--min-seconds {config.segment.min_seconds} must be below "
                         f"--max-seconds {config.segment.max_seconds}")


def _check_input(config: BuildConfig) -> None:
    if config.input_dir is None:
        needing = ", ".join(name for name in SOURCE_NAMES if name != "demo")
        raise ValueError(f"--source {config.source} needs --input: the corpus folder "
                         f"(sources that read one: {needing}; only demo makes its own)")
    from unitaf_data.hub import is_hub_id

    if is_url(config.input_dir):
        if config.source not in URL_SOURCES:
            raise ValueError(f"--input {config.input_dir}: --source {config.source} reads a "
                             f"local folder; a storage URL works with {', '.join(URL_SOURCES)}")
        return
    config = dataclasses.replace(config, input_dir=Path(config.input_dir))
    if config.input_dir.exists() or (config.source == "beat2"
                                     and is_hub_id(str(config.input_dir))):
        return
    raise FileNotFoundError(f"--input {config.input_dir}: no such folder"
                            + (" (nor a Hub dataset id, owner/name)"
                               if config.source == "beat2" else ""))


def _check_channel_names(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"--channel-names {path}: no such file")
    try:
        names = read_names(path)
    except UnicodeDecodeError as error:
        raise ValueError(f"--channel-names {path}: not a text file ({error.reason})") from None
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if not names or repeated:
        raise ValueError(f"--channel-names {path}: needs one distinct face channel name per "
                         "line" + (f" ({', '.join(repeated)} repeated)" if repeated else
                                   " (the file is empty)"))


def _check_pattern(flag: str, pattern: str, group: str) -> None:
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise ValueError(f"{flag} {pattern!r} is not a regular expression "
                         f"({error})") from None
    if group not in compiled.groupindex:
        raise ValueError(f"{flag} {pattern!r} needs a (?P<{group}>...) group")


def run_build(config: BuildConfig) -> BuildSummary:
    """Build (or resume) the dataset described by `config`; returns the run summary.

    The configuration, the storage of `--input` and `--out` (reachable, credentials
    accepted, bucket present) and, for a corpus on disk, its discovery are checked before
    the output is touched or Ray starts. A build that fails, other than by being
    interrupted, removes what it wrote when no unit of work was finished, or when no clip
    survived; otherwise a rerun resumes from it."""
    check_config(config)
    store = check_storage(config)
    refs = None if config.source == "demo" else _discover(config, config.input_dir)
    folder_existed = not store.is_empty() if not store.is_local else store.local_path().exists()
    began_here = config.overwrite or store.is_empty()
    _prepare_out_dir(config, store)
    try:
        return _build(config, store, refs)
    except Exception as error:
        if began_here and (isinstance(error, NothingSurvived) or not _finished_work(store)):
            log.info("removing what the failed build wrote in %s: nothing in it to resume",
                     store)
            _remove_output(store, keep_folder=folder_existed and not config.overwrite)
        raise


def check_storage(config: BuildConfig) -> Storage:
    """The output's storage, after one request to it (and to the corpus's, when that is a
    URL) has shown that it can be used: a clear StorageError otherwise."""
    if config.input_dir is not None and is_url(config.input_dir):
        Storage.of(str(config.input_dir)).check_access()
    store = Storage.of(config.out_dir)
    store.check_access()
    return store


def _build(config: BuildConfig, store: Storage, refs: list[RecordingRef] | None
           ) -> BuildSummary:
    summary = BuildSummary(config.out_dir)
    clock = time.perf_counter()
    init_ray(config.ray_address)
    summary.stage_seconds["ray start"] = time.perf_counter() - clock
    with stage_progress(config.progress) as progress:
        if refs is None:
            input_dir = _timed(summary, "prepare input",
                               lambda: _demo_corpus(config, store, progress))
            refs = _discover(config, input_dir)
        plans = _timed(summary, "transcribe", lambda: _transcribe_all(config, refs, store,
                                                                      progress, summary))
        written = _timed(summary, "write shards", lambda: _write_all(config, plans, store,
                                                                     progress, summary))
    _timed(summary, "finish", lambda: _finish(config, store, plans, written, summary))
    return summary


def _discover(config: BuildConfig, input_dir: Path) -> list[RecordingRef]:
    refs = get_source(config.source).discover(input_dir, config.source_options)
    if not refs:
        raise FileNotFoundError(f"no recordings found for --source {config.source} in "
                                f"{input_dir}")
    return refs


def _remove_output(store: Storage, keep_folder: bool) -> None:
    if store.is_local:  # only a folder the toolkit made (`unitaf_data.owned`)
        owned.remove(store.local_path(), "dataset", keep_folder=keep_folder)
    else:
        store.remove()


WORK = DatasetLayout.WORK


def _marker_key(kind: str, name: str) -> str:
    return f"{WORK}/{kind}/{name}.json"


def _finished_work(store: Storage) -> bool:
    """Whether any unit of work (a transcribed recording, a written shard) is marked done."""
    return any(key.endswith(".json") for kind in ("recordings", "shards")
               for key in store.list(f"{WORK}/{kind}"))


def _timed(summary: BuildSummary, stage: str, run):
    clock = time.perf_counter()
    result = run()
    summary.stage_seconds[stage] = time.perf_counter() - clock
    return result


def _prepare_out_dir(config: BuildConfig, store: Storage) -> None:
    """Start the output (a local folder marked as a dataset), or check that an existing one
    is a dataset begun with these settings. `--overwrite` deletes only a local folder the
    toolkit made (or an empty one), or everything under the URL prefix."""
    advice = "choose a new --out"
    if store.is_local:
        if config.overwrite:
            owned.remove(store.local_path(), "dataset", advice)
        owned.claim(store.local_path(), "dataset", f"{advice} or an empty folder")
    elif config.overwrite and not store.is_empty():
        store.remove()
    settings_key = f"{WORK}/settings.json"
    settings = config.output_settings()
    if store.exists(settings_key) and read_json_file(store / settings_key) != settings:
        if _finished_work(store):
            raise ValueError(
                f"{config.out_dir} was built with other settings (see "
                f"{store.url(settings_key)}); choose a new --out or pass --overwrite")
        log.info("starting %s over: it was begun with other settings and holds no "
                 "finished work", config.out_dir)
        _remove_output(store, keep_folder=True)
        if store.is_local:
            owned.claim(store.local_path(), "dataset")
    elif store.exists(settings_key):
        log.info("resuming the build in %s", config.out_dir)
    elif any(key != owned.MARKER for key in store.list()):
        raise FileExistsError(f"{config.out_dir} holds a dataset this build did not begin (no "
                              f"{store.url(settings_key)}): {advice} or pass --overwrite")
    write_json(store / settings_key, settings)


# --- stage 1: the demo corpus ---------------------------------------------------------------


def _demo_corpus(config: BuildConfig, store: Storage, progress) -> Path | str:
    """The demo corpus: at --input, else in the output's work folder (a folder, or a URL
    that every synthesis task uploads its files to)."""
    work = store.child(WORK)
    corpus_dir = config.input_dir or (work.local_path("demo-corpus") if store.is_local
                                      else work.child("demo-corpus").root)
    if demo.corpus_is_complete(corpus_dir, config.demo_minutes, config.seed):
        return corpus_dir
    import ray

    if not is_url(corpus_dir):
        owned.claim(Path(corpus_dir), "demo_corpus",
                    "pass an empty or new --input for the demo corpus")
    plans = demo.plan_corpus(config.demo_minutes, config.seed)
    task = progress.add_task("synthesise demo", total=len(plans), hours=0.0)
    # max_calls=1: a fresh worker process per recording, which eSpeak needs to be reproducible
    synthesize = ray.remote(num_cpus=1, max_calls=1)(demo.synthesize_recording)
    pending = {synthesize.remote(plan, corpus_dir, config.seed): plan for plan in plans}
    results: dict[str, dict] = {}
    while len(results) < len(plans):
        done = wait_one([r for r, plan in pending.items() if plan.recording not in results],
                        config.stall_timeout_s, "synthesise demo",
                        lambda refs: ", ".join(pending[r].recording for r in refs[:5]))
        results[pending[done].recording] = ray.get(done)
        progress.update(task, advance=1,
                        hours=sum(e["duration"] for e in results.values()) / 3600)
    entries = [results[plan.recording] for plan in plans]  # the index is in plan order
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

        def where(self) -> str:
            return node_label()

        def transcribe(self, recording):
            if isinstance(recording, Rejection):
                return None
            return {"transcript": self.transcriber.transcribe(recording.audio),
                    "node": node_label()}

    return AsrWorker


def _plan(recording, transcribed, config: BuildConfig):
    if isinstance(recording, Rejection):
        return {"rejection": recording.to_dict()}
    plan = stages.plan_recording(recording, transcribed["transcript"], config.segment,
                                 config.quality, config.text_source)
    return {"plan": plan.to_dict(), "node": transcribed["node"]}


def _transcribe_all(config: BuildConfig, refs: list[RecordingRef], store: Storage,
                    progress, summary: BuildSummary) -> list[stages.RecordingPlan | Rejection]:
    """Run every recording without a marker through load → ASR → plan; returns all results.
    The markers are listed once; plans take the refs of this run's discovery (the marker
    only says what was planned)."""
    def marker(ref: RecordingRef) -> str:
        return _marker_key("recordings", ref.id)

    marked = set(store.list(f"{WORK}/recordings"))
    todo = [ref for ref in refs if marker(ref) not in marked]
    task = progress.add_task("transcribe", total=len(refs), completed=len(refs) - len(todo),
                             hours=0.0)
    if todo:
        _run_asr_pool(config, todo, store, marker, progress, task, summary)
    results = []
    for ref in refs:
        saved = read_json_file(store / marker(ref))
        if "rejection" in saved:
            results.append(Rejection(**saved["rejection"]))
            continue
        plan = stages.RecordingPlan.from_dict(saved["plan"])
        if plan.ref.id != ref.id:
            raise ValueError(f"{store.url(marker(ref))} is the marker of {plan.ref.id}")
        plan.ref = ref
        results.append(plan)
    return stages.one_face_type(results)


def _run_asr_pool(config: BuildConfig, todo: list[RecordingRef], store: Storage, marker,
                  progress, task, summary: BuildSummary) -> None:
    """Load tasks feed the ASR actor pool (spread over the nodes); plan tasks turn each
    transcript into a plan; the driver writes each recording's marker."""
    import ray

    workers, options = actor_options(config.asr.device, config.asr_workers)
    # The feeding tasks reserve no CPU (at most two per actor are in flight): an actor
    # restarted onto a surviving node after a node loss may take the share they would
    # need, and then the pool would wait on loads that never start.
    load = ray.remote(num_cpus=0)(stages.load_recording)
    plan = ray.remote(num_cpus=0)(_plan)
    hours = 0.0

    def submit(actor, ref: RecordingRef):
        recording = load.remote(ref, config.source_options.face_fps_out,
                                config.quality.min_rms_db)
        return plan.remote(recording, actor.transcribe.remote(recording), config)

    def done(ref: RecordingRef, result: dict) -> None:
        nonlocal hours
        node = result.pop("node", None)
        write_json(store / marker(ref), result)
        duration = result.get("plan", {}).get("duration", 0.0)
        if node:
            summary.count(node, "recordings", 1)
            summary.count(node, "audio hours", duration / 3600)
        hours += duration / 3600
        progress.update(task, advance=1, hours=hours)

    with actor_pool(_asr_worker_class(), workers, options, config.asr) as actors:
        where = actor_nodes(actors, config.stall_timeout_s)
        run_on_actors(actors, todo, submit, done, timeout=config.stall_timeout_s,
                      stage="transcribe", name=lambda ref: f"recording {ref.id}", where=where)


# --- stage 3: shards ------------------------------------------------------------------------


def _write_shard(shard, clips, target, face_fps_out):
    """A Ray task: one shard written at its storage location; returns rows, record, node."""
    rows, record = stages.write_shard(shard, clips, target, face_fps_out)
    return rows, record, node_label()


def _write_all(config: BuildConfig, plans: list, store: Storage, progress,
               summary: BuildSummary) -> tuple[list[dict[str, Any]], dict[str, ShardInfo]]:
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

    def marker(plan: shards.ShardPlan) -> str:
        return _marker_key("shards", plan.ref.name)

    marked = set(store.list(f"{WORK}/shards"))
    todo = [s for s in shard_plans if marker(s) not in marked]
    task = progress.add_task("write shards", total=len(shard_plans),
                             completed=len(shard_plans) - len(todo), hours=0.0)
    write = ray.remote(num_cpus=0.5, max_retries=3)(_write_shard)
    hours = 0.0

    def submit(shard: shards.ShardPlan):
        return write.remote(shard.ref, [clips[k] for k in shard.keys],
                            store / DatasetLayout.shard_relative(shard.ref),
                            config.source_options.face_fps_out)

    def written(shard: shards.ShardPlan, result: tuple[list[dict[str, Any]], ShardInfo, str]
                ) -> None:
        nonlocal hours
        rows, record, node = result
        write_json(store / marker(shard), {"rows": rows, "record": record.to_dict()})
        summary.count(node, "shards", 1)
        hours += sum(row["duration"] for row in rows) / 3600
        progress.update(task, advance=1, hours=hours)

    run_tasks(todo, submit, written, config.stall_timeout_s, "write shards",
              name=lambda shard: f"shard {shard.ref.id}")
    saved = {s.ref.id: read_json_file(store / marker(s)) for s in shard_plans}
    return ([row for done in saved.values() for row in done["rows"]],
            {shard: ShardInfo.from_dict(done["record"]) for shard, done in saved.items()})


# --- stage 4: tables, info and card ---------------------------------------------------------


def _finish(config: BuildConfig, store: Storage, plans: list, written: tuple[
        list[dict[str, Any]], dict[str, ShardInfo]], summary: BuildSummary) -> None:
    rows, records = written
    layout = DatasetLayout(store)
    recording_plans = [p for p in plans if isinstance(p, stages.RecordingPlan)]
    rejections = [p for p in plans if isinstance(p, Rejection)] + [
        r for p in recording_plans for r in p.rejections]
    rows.sort(key=lambda r: (split_order(r["split"]), r["split"], r["key"]))
    card.write_table(store / layout.MANIFEST_KEY, rows)
    card.write_table(store / layout.REJECTED_KEY, [r.to_dict() for r in rejections],
                     card.REJECTED_COLUMNS)
    for rejection in rejections:  # here, in the driver: Ray workers' logs are not shown
        log.debug("rejected %s %s: %s (%s)", rejection.what, rejection.where,
                  rejection.reason, rejection.detail)
    summary.rejections = RejectionSummary.of(rejections)
    if not rows:
        (what, reason), count = next(iter(summary.rejections.by_reason.items()))
        raise NothingSurvived(
            f"no clip survived: {summary.rejections.recordings} of {len(plans)} recordings "
            f"and {summary.rejections.clips} clips were rejected, most often {what} "
            f"{reason} ({count})", summary.rejections)
    face = recording_plans[0]
    info = card.dataset_info(
        config.source, (face.face_type, tuple(face.channels), face.fps),
        config.output_settings(), rows, rejections, len(plans),
        sum(p.duration for p in recording_plans) / 3600, records)
    card.write_info(layout, info)
    card.write_card(Dataset.open_folder(config.out_dir))
    counts = info.counts
    summary.recordings, summary.clips = counts["recordings"], counts["clips"]
    summary.clip_hours, summary.input_hours = counts["hours"], counts["input_hours"]
    summary.shards = counts["shards"]
    log.info("built %d clips (%.3f h) in %d shards; %d rejected", summary.clips,
             summary.clip_hours, summary.shards, len(rejections))
