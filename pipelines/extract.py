"""`unitaf-data extract-features` on Ray.

One actor pool per backend (each actor holds the backend's models); one unit of work is one
main shard, whose sidecar shards are written under temporary names, renamed, and then marked
done in `features/.build/{backend}/`. A rerun skips marked shards. At the end every feature
set gets its `feature.json` (backend, model files with sha256, fields, frame rate, checks)
and the dataset card gains a config per feature set.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from unitaf_data import card, extract
from unitaf_data.features import ExtractSettings, group_by_backend, make_backend, plan_backend
from unitaf_pipelines.runtime import (
    actor_options,
    init_ray,
    read_json,
    run_on_actors,
    stage_progress,
    write_json_atomic,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractConfig:
    dataset_dir: Path
    feature_sets: tuple[str, ...]
    workers: int | None = None  # per backend; default one per CPU (or GPU)
    gpus_per_worker: float = 0.0
    batch_seconds: float = 60.0
    unitalker_ckpt: str | None = None
    indextts2_dir: str | None = None
    w2v_bert: str | None = None
    semantic_codec: str | None = None
    ray_address: str | None = None
    progress: bool = True

    @property
    def device(self) -> str:
        return "cuda" if self.gpus_per_worker > 0 else "cpu"

    def settings(self) -> ExtractSettings:
        return ExtractSettings(dataset_dir=self.dataset_dir, device=self.device,
                               unitalker_ckpt=self.unitalker_ckpt,
                               indextts2_dir=self.indextts2_dir, w2v_bert=self.w2v_bert,
                               semantic_codec=self.semantic_codec)


@dataclass
class ExtractSummary:
    feature_sets: dict[str, dict[str, Any]] = field(default_factory=dict)
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

        def shard(self, dataset_dir: Path, shard_path: Path, batch_seconds: float) -> dict:
            return asdict(extract.extract_shard(self.backend, self.feature_sets, dataset_dir,
                                                shard_path, batch_seconds))

    return Extractor


def run_extract(config: ExtractConfig) -> ExtractSummary:
    import ray

    clock = time.perf_counter()
    shards = extract.main_shards(config.dataset_dir)
    groups = group_by_backend(list(config.feature_sets))
    plans = {backend: plan_backend(backend, sets, config.settings())
             for backend, sets in groups.items()}
    init_ray(config.ray_address)
    summary = ExtractSummary()
    with stage_progress(config.progress) as progress:
        for backend, sets in groups.items():
            work = config.dataset_dir / "features" / ".build" / backend
            todo = [s for s in shards if not _marker(work, s).exists()]
            task = progress.add_task(f"extract {','.join(sets)}", total=len(shards),
                                     completed=len(shards) - len(todo), hours=0.0)
            count, options = actor_options(config.device, config.workers, cpu_share=0.0,
                                           gpus_per_worker=config.gpus_per_worker or None,
                                           memory_per_worker=plans[backend].memory_bytes)
            log.info("%s: %d actor(s)", backend, count)
            actors = [_extractor_class().options(**options).remote(backend, sets,
                                                                   plans[backend].settings)
                      for _ in range(count)]
            declared = ray.get(actors[0].describe.remote())
            hours = 0.0

            def submit(actor, shard: Path):
                return actor.shard.remote(config.dataset_dir, shard, config.batch_seconds)

            def done(shard: Path, report: dict, work=work, task=task) -> None:
                nonlocal hours
                write_json_atomic(_marker(work, shard), report)
                hours += report["audio_seconds"] / 3600
                progress.update(task, advance=1, hours=hours)

            run_on_actors(actors, todo, submit, done)
            reports = [read_json(_marker(work, s)) for s in shards]
            for name in sets:
                summary.feature_sets[name] = _write_feature_json(config, name, declared[name],
                                                                 reports)
    card.refresh_card(config.dataset_dir)
    summary.seconds = time.perf_counter() - clock
    return summary


def _marker(work: Path, shard: Path) -> Path:
    return work / f"{shard.stem}.json"


def _write_feature_json(config: ExtractConfig, name: str, declared: dict,
                        reports: list[dict]) -> dict:
    problems = [p for r in reports for p in r["problems"].get(name, [])]
    info = {
        **declared, "name": name, "tool_version": card.tool_version(),
        "settings": {"batch_seconds": config.batch_seconds, "device": config.device},
        "checks": {"clips": sum(r["clips"] for r in reports),
                   "audio_hours": round(sum(r["audio_seconds"] for r in reports) / 3600, 6),
                   "rejected": [x for r in reports for x in r["rejected"]],
                   "problems": len(problems), "first_problems": problems[:20],
                   "frames_within_one_of_duration": not any("frames for" in p
                                                            for p in problems),
                   "all_finite": not any("NaN" in p for p in problems),
                   "dims_as_declared": not any("shape" in p for p in problems)},
    }
    write_json_atomic(config.dataset_dir / "features" / name / "feature.json", info)
    return info
