"""Verifying a dataset whole: every main shard and every sidecar of the chosen feature sets
against the dataset's records, through the dataset contract's reading API (so a folder, a
Hub dataset or any other storage `Dataset.open` reaches is verified the same way).

What is checked: each file's size and sha256 against its record, its sample count and
end-of-archive marker, member names; sidecars recorded for every main shard with the same
sample count and key digest, and their keys in lockstep with the main shard's; every
sample's clip json, face and audio against the alignment contract, and every sidecar array
as its feature.json declares it (dtype, shape, frame count, finite, code range); the
manifest listing exactly the clips of the shards. Nothing is written. Damage is reported by
shard, key and field, and reading goes on with the next sample or shard, so one report
shows all of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from unitaf_data.dataset import Dataset, ShardRef
from unitaf_data.reader import ShardError, Skips

MANIFEST = "manifest.parquet"


@dataclass(frozen=True)
class Damage:
    """One problem: where (shard id, sample key, field) and what."""

    shard: str  # train/train-000000, features/SET/train/train-000000, or manifest.parquet
    key: str | None
    field: str | None
    reason: str
    detail: str = ""

    @staticmethod
    def of(error: ShardError) -> Damage:
        return Damage(error.shard, error.key, error.field, error.reason, error.detail)

    def __str__(self) -> str:
        where = self.shard + (f", key {self.key}" if self.key else "") + (
            f", field {self.field}" if self.field else "")
        return f"{where}: {self.reason}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class VerifyReport:
    """What `verify` read and every problem it found."""

    dataset: str
    feature_sets: list[str]
    shards: int = 0  # main shards
    sidecars: int = 0  # sidecar shards
    samples: int = 0  # clips read with all their fields intact
    damage: list[Damage] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.damage


class _Collect(Skips):
    """A Skips that keeps every error, not only counts."""

    def __init__(self, found: list[Damage]) -> None:
        super().__init__()
        self.found = found

    def add(self, error: ShardError) -> None:
        super().add(error)
        self.found.append(Damage.of(error))


def verify(dataset: Dataset, feature_sets: list[str] | None = None) -> VerifyReport:
    """Check every shard and sidecar of `dataset` (with `feature_sets`; None: every complete
    set) against its records; the report lists all damage, by shard, key and field."""
    sets = dataset.feature_set_names() if feature_sets is None else list(feature_sets)
    shards = dataset.shards()
    report = VerifyReport(str(dataset.origin), sets, len(shards))
    collect = _Collect(report.damage)
    for name in sets:
        info = dataset.feature_set(name)
        report.sidecars += len(info.shards)
        for shard in shards:
            _check_sidecar_record(dataset, name, shard, report)
        for stray in sorted(set(info.shards) - {s.id for s in shards}):
            report.damage.append(Damage(f"features/{name}/{stray}", None, None,
                                        "sidecar of a shard the dataset does not declare"))
    wanted = {name: list(dataset.feature_set(name).fields) for name in sets}
    read: list[tuple[str, str]] = []
    for shard in shards:  # one shard at a time: a shard whose sidecar is missing is reported
        usable = {name: fields for name, fields in wanted.items()
                  if shard.id in dataset.feature_set(name).shards}
        for sample in dataset.samples([shard], usable, collect):
            try:
                sample.audio()
            except ShardError as error:
                collect.add(error)
                continue
            read.append((sample.key, sample.shard))
    report.samples = len(read)
    _check_manifest(dataset, read, report)
    return report


def _check_sidecar_record(dataset: Dataset, name: str, shard: ShardRef,
                          report: VerifyReport) -> None:
    main, side = dataset.info.shards[shard.id], dataset.feature_set(name).shards.get(shard.id)
    where = f"features/{name}/{shard.id}"
    if side is None:
        report.damage.append(Damage(where, None, None, "no sidecar recorded for this shard"))
    elif side.samples != main.samples or side.keys_sha256 != main.keys_sha256:
        report.damage.append(Damage(
            where, None, None, "sidecar record holds other keys than its main shard",
            f"{side.samples} samples, main shard {main.samples}"))


def _check_manifest(dataset: Dataset, read: list[tuple[str, str]], report: VerifyReport
                    ) -> None:
    """The manifest lists exactly the clips read (when no shard was damaged: a damaged
    shard's clips were not all read)."""
    from unitaf_data.records import RecordError

    try:
        listed = [(row["key"], f"{row['split']}/{row['shard']}") for row in dataset.manifest()]
    except RecordError as error:
        report.damage.append(Damage(MANIFEST, None, None, "unreadable manifest", str(error)))
        return
    if report.damage:
        return
    for key, shard in sorted(set(listed) ^ set(read))[:10]:
        report.damage.append(Damage(MANIFEST, key, None, "manifest and shards disagree",
                                    f"{shard}: listed but not in the shard" if
                                    (key, shard) in listed else f"{shard}: not listed"))
    if not report.damage and len(listed) != len(set(listed)):
        report.damage.append(Damage(MANIFEST, None, None, "a clip is listed twice"))
