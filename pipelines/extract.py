"""`unitaf-data extract-features` on Ray.

One actor pool per backend (each actor holds the backend's models); one unit of work is one
main shard, whose sidecar shards (one per requested feature set of that backend) are written
under temporary names and renamed; then each set's marker `features/.build/{set}/{shard}.json`
is written. A set's settings (backend, model files and hashes, batch policy, device) are
saved beside its markers when it is begun and compared on every rerun: the same settings
resume, other settings are refused (or, with `overwrite`, the set is redone). A set's
`feature.json` and dataset-card config are written only once every shard has its sidecar.
The dataset may be a folder or a storage URL (`s3://`, `gs://`): each actor reads its main
shard and writes its sidecars there itself; markers, settings and records live in the
dataset's storage, so a rerun from any machine resumes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unitaf_data import card, extract
from unitaf_data.dataset import (
    Dataset,
    DatasetLayout,
    ShardRef,
    check_feature_folder,
    read_json_file,
    remove_feature_set,
    write_json,
)
from unitaf_data.features import ExtractSettings, group_by_backend, make_backend, plan_backend
from unitaf_data.features.augment import AUGMENTED_SET, AugmentSettings
from unitaf_data.schema import FeatureSetInfo
from unitaf_pipelines.runtime import (
    DEFAULT_STALL_TIMEOUT_S,
    actor_nodes,
    actor_options,
    actor_pool,
    init_ray,
    node_label,
    run_on_actors,
    stage_progress,
    wait_one,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractConfig:
    dataset_dir: Path | str  # a folder or a storage URL
    feature_sets: tuple[str, ...] = ("whisper", "units", "utterance")  # the offline sets
    workers: int | None = None  # per backend; default one per CPU (or GPU)
    gpus_per_worker: float = 0.0
    batch_seconds: float = 60.0
    unitalker_ckpt: str | None = None
    indextts2_dir: str | None = None
    w2v_bert: str | None = None
    semantic_codec: str | None = None
    ray_address: str | None = None
    stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S
    overwrite: bool = False  # redo the requested sets from scratch
    augment: int = 0  # augmented copies per train clip (adds the whisper_aug set)
    augment_seed: int = 0
    skip_bad: bool = False  # a clip with bad data is refused (bad_sample) instead of failing
    progress: bool = True

    @property
    def device(self) -> str:
        return "cuda" if self.gpus_per_worker > 0 else "cpu"

    def settings(self) -> ExtractSettings:
        return ExtractSettings(dataset_dir=self.dataset_dir, device=self.device,
                               unitalker_ckpt=self.unitalker_ckpt,
                               indextts2_dir=self.indextts2_dir, w2v_bert=self.w2v_bert,
                               semantic_codec=self.semantic_codec,
                               augment=AugmentSettings(self.augment, self.augment_seed))

    @property
    def sets(self) -> tuple[str, ...]:
        """The requested sets, plus `whisper_aug` when copies are asked for."""
        extra = (AUGMENTED_SET,) if self.augment and AUGMENTED_SET not in self.feature_sets \
            else ()
        return (*self.feature_sets, *extra)


@dataclass
class ExtractSummary:
    feature_sets: dict[str, FeatureSetInfo] = field(default_factory=dict)
    seconds: float = 0.0


def _extractor_class():
    import ray

    @ray.remote
    class Extractor:
        """One backend's models, held for the whole run."""

        def __init__(self, backend: str, feature_sets: list[str], settings) -> None:
            self.backend = make_backend(backend, feature_sets, settings)
            self.feature_sets = feature_sets

        def describe(self) -> dict:
            return self.backend.describe()

        def where(self) -> str:
            return node_label()

        def shard(self, dataset_dir: Path | str, shard: ShardRef, batch_seconds: float,
                  skip_bad: bool) -> dict:
            reports = extract.extract_shard(self.backend, self.feature_sets,
                                            Dataset.open_folder(dataset_dir), shard,
                                            batch_seconds, skip_bad)
            return {name: report.to_dict() for name, report in reports.items()}

    return Extractor


def run_extract(config: ExtractConfig) -> ExtractSummary:
    clock = time.perf_counter()
    dataset = Dataset.open_folder(config.dataset_dir)
    shards = dataset.shards()
    groups = group_by_backend(list(config.sets))
    plans = {backend: plan_backend(backend, sets, config.settings())
             for backend, sets in groups.items()}
    for name in config.feature_sets:  # before anything starts: never a folder not unitaf's
        check_feature_folder(dataset.layout, name)
    if config.overwrite:
        for name in config.sets:
            remove_feature_set(dataset.layout, name)
    init_ray(config.ray_address)
    summary = ExtractSummary()
    with stage_progress(config.progress) as progress:
        for backend, sets in groups.items():
            summary.feature_sets |= _run_backend(config, dataset, shards, backend, sets,
                                                 plans[backend], progress)
    card.refresh_card(config.dataset_dir)
    summary.seconds = time.perf_counter() - clock
    return summary


def _run_backend(config: ExtractConfig, dataset: Dataset, shards: list[ShardRef],
                 backend: str, sets: list[str], plan, progress) -> dict[str, FeatureSetInfo]:
    layout = dataset.layout
    marked = {key for name in sets for key in layout.store.list(layout.feature_work_key(name))}
    todo = [s for s in shards if not all(_marker(name, s) in marked for name in sets)]
    task = progress.add_task(f"extract {','.join(sets)}", total=len(shards),
                             completed=len(shards) - len(todo), hours=0.0)
    count, options = actor_options(config.device, config.workers, cpu_share=0.0,
                                   gpus_per_worker=config.gpus_per_worker or None,
                                   memory_per_worker=plan.memory_bytes)
    log.info("%s: %d actor(s)", backend, count)
    import ray

    with actor_pool(_extractor_class(), count, options, backend, sets, plan.settings) as actors:
        declared = ray.get(wait_one([actors[0].describe.remote()], config.stall_timeout_s,
                                    f"start {backend} actors",
                                    lambda refs: "the first actor's model description"))
        settings = {name: _settings(config, declared[name]) for name in sets}
        for name in sets:
            _begin(layout, name, settings[name], dataset.root)
        where = actor_nodes(actors, config.stall_timeout_s)
        hours = 0.0

        def submit(actor, shard: ShardRef):
            return actor.shard.remote(config.dataset_dir, shard, config.batch_seconds,
                                      config.skip_bad)

        def done(shard: ShardRef, reports: dict) -> None:
            nonlocal hours
            for name in sets:
                write_json(layout.store / _marker(name, shard), reports[name])
            hours += reports[sets[0]]["audio_seconds"] / 3600
            progress.update(task, advance=1, hours=hours)

        run_on_actors(actors, todo, submit, done, timeout=config.stall_timeout_s,
                      stage=f"extract {','.join(sets)}", name=lambda s: f"shard {s.id}",
                      where=where)
    finished = {}
    for name in sets:
        reports = {s.id: extract.SetReport.from_dict(
            read_json_file(layout.store / _marker(name, s))) for s in shards}
        info = extract.feature_info(name, declared[name], settings[name], reports)
        write_json(layout.store / layout.feature_info_key(name), info.to_dict())
        finished[name] = info
    return finished


def _settings(config: ExtractConfig, declared: dict[str, Any]) -> dict[str, Any]:
    """Everything that changes a set's bytes: the backend's description (model files and
    hashes, fields), the batch policy and the device."""
    return {"described": declared, "batch_seconds": config.batch_seconds,
            "device": config.device, "tool_version": card.tool_version()}


def _begin(layout: DatasetLayout, name: str, settings: dict[str, Any], root: Path | str
           ) -> None:
    """Claim the set's folder when it is local (`unitaf_data.owned`), then record the set's
    settings, or check them against the run that began it."""
    check_feature_folder(layout, name, claim=True)
    path = layout.store / f"{layout.feature_work_key(name)}/settings.json"
    if path.exists():
        if read_json_file(path) != settings:
            raise ValueError(
                f"features/{name} in {root} was extracted with other settings (other model "
                f"files, batch policy or device; see {path}): pass --overwrite to redo it")
        return
    if layout.store.exists(layout.feature_info_key(name)):
        raise ValueError(f"features/{name} in {root} has no record of its settings: pass "
                         "--overwrite to redo it")
    write_json(path, settings)


def _marker(name: str, shard: ShardRef) -> str:
    return f"{DatasetLayout.feature_work_key(name)}/{shard.name}.json"
