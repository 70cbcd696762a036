"""A training run on disk: what rebuilding its model needs, its checkpoints, and loading it.

    RUN/
      config.json           the resolved TrainConfig of the stage that wrote the run
      model.json            RunInfo: model widths, inputs, speakers, rig, mouth interval,
                            the front end that turns audio into the input, the dataset used
      rig.npz               the rig's arrays, when training used a rig file
      front_end.safetensors the fitted unit centroids, for a run on offline units
      step_NNNNNN/          model.safetensors; state.safetensors (optimiser tensors, RNG)
                            and state.json (step, loss history, optimiser groups, schedule)
      best/                 model.safetensors and best.json of the best validation step
      validation.jsonl, tensorboard/, eval/{split}/

Nothing here is pickled: weights and optimiser tensors are safetensors, the rest JSON, so
a run from elsewhere (the Hub) can be loaded without running its code. Loading a run reads
it and writes nothing into it.

A run may live at a storage URL (`--out s3://bucket/runs/stage1`): training then works in a
local staging folder (`$UNITAF_RUN_CACHE`, default `~/.cache/unitaf/runs/PROTOCOL/BUCKET/
PREFIX`), pulled from the URL first (so an interrupted run resumes) and pushed back to it
when training ends, however it ends; `load_run` pulls a URL run the same way.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from unitaf_data.dataset import Storage, read_json_file, write_json
from unitaf_data.records import RecordError, positive, record_keys, typed
from unitaf_model.model.expression import LABEL, ExpressionArgs

if TYPE_CHECKING:
    from unitaf_data.dataset import Dataset
    from unitaf_model.training.config import TrainConfig
    from unitaf_model.training.data import DataSpec

RUN_FORMAT = 1
CHECKPOINT_GLOB = "step_??????"
BEST = "best"
RIGS = ("demo", "rig.npz", None)  # the built-in rig, the rig stored in the run, or none
INPUTS = ("backbone_set", "backbone_field", "teacher_set", "teacher_field")
MAX_SIZE = 65_536  # the largest vocabulary, width or identity count a run may declare
MAX_DILATION = 16
MAX_RATE = 1000.0  # frames per second a run may declare for its input or its face


def _rate(value: Any, what: str) -> float:
    rate = positive(value, what)
    if rate > MAX_RATE:
        raise RecordError(f"{what}: at most {MAX_RATE:g} frames per second")
    return rate


@dataclass(frozen=True)
class ModelArgs:
    """The widths and heads `UniTAF` is built with."""

    backbone: str  # units | precomputed
    backbone_size: int  # code vocabulary (units) or input width (precomputed)
    teacher_dim: int
    face_type: str
    channels: tuple[str, ...]
    identities: int  # rows of the decoder's identity embedding
    input_rate: float = 50.0  # frame rate of the backbone input (the projector halves it)
    decoder_dilation: int = 1  # 1: UniTalker's decoder; d: its layers 2, 3 dilate by d, d²

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "channels": list(self.channels)}

    @staticmethod
    def from_dict(data: Any, what: str = "model") -> ModelArgs:
        """Checked: a model.json from elsewhere must not build a model of any size."""
        optional = {"input_rate", "decoder_dilation"}
        item = record_keys(data, what, {f.name for f in dataclasses.fields(ModelArgs)} - optional,
                     optional)
        backbone = typed(item["backbone"], str, f"{what}.backbone")
        face_type = typed(item["face_type"], str, f"{what}.face_type")
        channels = tuple(typed(c, str, f"{what}.channels[]")
                         for c in typed(item["channels"], list, f"{what}.channels"))
        sizes = {k: positive(item[k], f"{what}.{k}", int)
                 for k in ("backbone_size", "teacher_dim", "identities")}
        if backbone not in ("units", "precomputed") or not re.fullmatch(r"[a-z][a-z0-9_]*",
                                                                        face_type):
            raise RecordError(f"{what}: backbone {backbone!r} or face type {face_type!r} unknown")
        if not channels or len(set(channels)) != len(channels) or len(channels) > MAX_SIZE \
                or max(sizes.values()) > MAX_SIZE:
            raise RecordError(f"{what}: channels must be distinct names, sizes at most "
                              f"{MAX_SIZE}")
        dilation = positive(item.get("decoder_dilation", 1), f"{what}.decoder_dilation", int)
        if dilation > MAX_DILATION:
            raise RecordError(f"{what}.decoder_dilation: at most {MAX_DILATION}")
        return ModelArgs(backbone, sizes["backbone_size"], sizes["teacher_dim"], face_type,
                         channels, sizes["identities"],
                         _rate(item.get("input_rate", 50.0), f"{what}.input_rate"), dilation)


@dataclass(frozen=True)
class RunInfo:
    """`model.json`: everything a run's model needs besides its weights."""

    stage: int
    model: ModelArgs
    inputs: dict[str, str]  # backbone_set, backbone_field, teacher_set, teacher_field
    fps: float  # the model's face frame rate (the decoder's)
    face_fps: float  # the dataset's face frame rate (what outputs default to)
    speakers: dict[str, int]  # train speaker → identity row; others use `unknown_identity`
    rig: str | None  # "demo", "rig.npz" (stored in the run) or None (no vertex rig)
    mouth_interval: dict[str, float] | None  # low, high, coverage, frames
    front_end: dict[str, Any]  # backend, set, field, model (name, files) of the input
    dataset: dict[str, Any]  # path (resolved), hub repo and revision, record hashes
    expression: ExpressionArgs | None = None  # stage 3: the residual's channels and inputs
    format: int = RUN_FORMAT

    @property
    def unknown_identity(self) -> int:
        return self.model.identities - 1

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "model": self.model.to_dict(),
                "expression": None if self.expression is None else self.expression.to_dict()}

    @staticmethod
    def from_dict(data: Any, what: str = "model.json") -> RunInfo:
        optional = {"expression", "format"}
        item = record_keys(data, what, {f.name for f in dataclasses.fields(RunInfo)} - optional,
                     optional)
        version = typed(item.get("format", RUN_FORMAT), int, f"{what}.format")
        if version != RUN_FORMAT:
            raise RecordError(f"{what}: run format {version}; this unitaf reads {RUN_FORMAT}")
        model = ModelArgs.from_dict(item["model"], f"{what}.model")
        inputs = record_keys(item["inputs"], f"{what}.inputs", set(INPUTS))
        speakers = typed(item["speakers"], dict, f"{what}.speakers")
        interval = typed(item["mouth_interval"], (dict, type(None)), f"{what}.mouth_interval")
        rig = typed(item["rig"], (str, type(None)), f"{what}.rig")
        if rig not in RIGS:
            raise RecordError(f"{what}.rig: {rig!r} is not one of {RIGS}")
        return RunInfo(
            stage=positive(item["stage"], f"{what}.stage", int), model=model,
            inputs={k: (_set_name if k.endswith("_set") else _field_name)(v, f"{what}.inputs.{k}")
                    for k, v in inputs.items()},
            fps=_rate(item["fps"], f"{what}.fps"),
            face_fps=_rate(item["face_fps"], f"{what}.face_fps"),
            speakers={typed(k, str, f"{what}.speakers"): _identity(v, model, f"{what}.speakers")
                      for k, v in speakers.items()},
            rig=rig, mouth_interval=None if interval is None else _interval(
                interval, f"{what}.mouth_interval"),
            front_end=_front_end_record(item["front_end"], f"{what}.front_end"),
            dataset=_dataset_record(item["dataset"], f"{what}.dataset"),
            expression=None if item.get("expression") is None else ExpressionArgs.from_dict(
                item["expression"], model.channels, f"{what}.expression"),
            format=version)


_FIELD_NAME = re.compile(r"[A-Za-z0-9_]{1,64}\.npy")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}")


def _set_name(value: Any, what: str) -> str:
    from unitaf_data.dataset import check_set_name

    try:
        return check_set_name(typed(value, str, what))
    except ValueError as error:
        raise RecordError(f"{what}: {error}") from None


def _field_name(value: Any, what: str) -> str:
    if not _FIELD_NAME.fullmatch(typed(value, str, what)):
        raise RecordError(f"{what}: {value!r} is not a field name like teacher.npy")
    return value


def _front_end_record(data: Any, what: str) -> dict[str, Any]:
    """How the run's input is computed from audio: the backend, the feature set and field,
    the model (name, files and their hashes) and the frame rate."""
    item = record_keys(data, what, {"backend", "set", "field"}, {"model", "frame_rate"})
    backend = typed(item["backend"], str, f"{what}.backend")
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", backend):
        raise RecordError(f"{what}.backend: {backend!r} is not a backend name")
    found = {"backend": backend, "set": _set_name(item["set"], f"{what}.set"),
             "field": _field_name(item["field"], f"{what}.field")}
    if "model" in item:
        model = typed(item["model"], dict, f"{what}.model")
        files = typed(model.get("files", {}), dict, f"{what}.model.files")
        for name, digest in files.items():
            typed(name, str, f"{what}.model.files")
            typed(digest, str, f"{what}.model.files.{name}")
        found["model"] = model
    if "frame_rate" in item:
        found["frame_rate"] = None if item["frame_rate"] is None else _rate(
            item["frame_rate"], f"{what}.frame_rate")
    return found


def _dataset_record(data: Any, what: str) -> dict[str, Any]:
    """The dataset's identity: its folder, storage URL and/or Hub repo at a commit, and the
    hashes of its records (unitaf.json, each feature set's feature.json)."""
    item = record_keys(data, what, set(),
                       {"path", "url", "hub", "revision", "info_sha256", "feature_sets"})
    if not {"path", "url", "hub"} & set(item):
        raise RecordError(f"{what}: names neither a path, a storage URL nor a hub repository")
    found: dict[str, Any] = {}
    if "path" in item:
        found["path"] = typed(item["path"], str, f"{what}.path")
    if "url" in item:  # a string the user typed: checked as a storage URL, opened as one
        found["url"] = typed(item["url"], str, f"{what}.url")
        try:
            Storage.of(found["url"])
        except OSError as error:
            raise RecordError(f"{what}.url: {error}") from None
    if "hub" in item:
        from unitaf_data.hub import is_hub_id

        found["hub"] = typed(item["hub"], str, f"{what}.hub")
        if not is_hub_id(found["hub"]):
            raise RecordError(f"{what}.hub: {found['hub']!r} is not a Hub id like owner/name")
    for name, pattern in (("revision", _COMMIT), ("info_sha256", _SHA256)):
        if name in item:
            found[name] = typed(item[name], str, f"{what}.{name}")
            if not pattern.fullmatch(found[name]):
                raise RecordError(f"{what}.{name}: {found[name]!r} is not a hex digest")
    if "feature_sets" in item:
        sets = typed(item["feature_sets"], dict, f"{what}.feature_sets")
        found["feature_sets"] = {_set_name(k, f"{what}.feature_sets"): typed(
            v, str, f"{what}.feature_sets.{k}") for k, v in sets.items()}
        if not all(_SHA256.fullmatch(v) for v in found["feature_sets"].values()):
            raise RecordError(f"{what}.feature_sets: values must be sha256 hex digests")
    return found


def _interval(data: Any, what: str) -> dict[str, float]:
    item = record_keys(data, what, {"low", "high"}, {"coverage", "frames"})
    found = {k: typed(v, float, f"{what}.{k}") for k, v in item.items()}
    if not all(np.isfinite(v) for v in found.values()) or found["low"] >= found["high"]:
        raise RecordError(f"{what}: low {found['low']} must be below high {found['high']}, "
                          "all finite")
    return found


def _identity(value: Any, model: ModelArgs, what: str) -> int:
    row = typed(value, int, what)
    if not 0 <= row < model.identities:
        raise RecordError(f"{what}: identity row {row} outside [0, {model.identities})")
    return row


# --- checkpoints ----------------------------------------------------------------------------


CHECKPOINT_FILES = ("model.safetensors", "state.safetensors", "state.json")
BEST_FILES = ("model.safetensors", "best.json")
_TEMPORARY = re.compile(r"(step_\d{6}|best)\.(tmp|old)")


def save_checkpoint(folder: Path, model_state: dict[str, torch.Tensor],
                    optimizer: torch.optim.Optimizer, scheduler, step: int,
                    history: list[dict[str, float]]) -> None:
    """`folder` written whole into a temporary folder beside it (its record, state.json,
    last) and swapped in (`swap_in`)."""
    tmp = _fresh_temporary(folder)
    save_weights(model_state, tmp / "model.safetensors")
    optimiser = optimizer.state_dict()
    tensors = {f"optimizer.{index}.{name}": value.detach().cpu().contiguous()
               for index, state in optimiser["state"].items() for name, value in state.items()}
    tensors["torch_rng"] = torch.get_rng_state()
    save_weights(tensors, tmp / "state.safetensors")
    write_json(tmp / "state.json", {"step": step, "history": history,
                                    "param_groups": optimiser["param_groups"],
                                    "scheduler": scheduler.state_dict()})
    swap_in(tmp, folder)


def save_best(run: Path, model_state: dict[str, torch.Tensor], record: dict[str, Any]
              ) -> None:
    """`best/`: the weights and their record (best.json, written last) into a temporary
    folder, swapped in whole, so `best/` is always the old complete one or the new one."""
    tmp = _fresh_temporary(run / BEST)
    save_weights(model_state, tmp / "model.safetensors")
    write_json(tmp / "best.json", record)
    swap_in(tmp, run / BEST)


def _fresh_temporary(folder: Path) -> Path:
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def swap_in(tmp: Path, folder: Path) -> None:
    """Put the complete folder `tmp` where `folder` is: `folder` is renamed to `folder.old`,
    `tmp` to `folder`, then the old one is deleted. Each rename is atomic; a crash between
    them leaves `folder.old` complete, which readers use (`complete_folder`) and a restart
    puts back (`recover_run`)."""
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def complete_folder(folder: Path, files: tuple[str, ...]) -> Path | None:
    """`folder` (refused as damaged, RecordError, when it lacks any of `files`: `swap_in`
    never leaves it so); while it is missing, its `.old` copy left by a crash in the middle
    of `swap_in` when that one is complete; else None."""
    if folder.exists():
        missing = [name for name in files if not (folder / name).is_file()]
        if missing:
            raise RecordError(f"{folder} is damaged: it lacks {', '.join(missing)} (train "
                              "the run again, or delete the folder)")
        return folder
    old = folder.with_name(folder.name + ".old")
    return old if all((old / name).is_file() for name in files) else None


def recover_run(run: Path) -> None:
    """After a crash: delete the run's leftover temporary folders (`*.tmp`, the toolkit's
    own, possibly half written) and put back a `best/` or checkpoint whose swap was cut
    between its two renames (`*.old` with no folder in its place)."""
    for path in sorted(run.iterdir()) if run.is_dir() else []:
        match = _TEMPORARY.fullmatch(path.name)
        if not match or not path.is_dir() or path.is_symlink():
            continue
        target = run / match[1]
        if match[2] == "old" and not target.exists():
            path.rename(target)
        else:
            shutil.rmtree(path)


def save_weights(state: dict[str, torch.Tensor], path: Path) -> None:
    """Tensors as safetensors; a failed write (a full disk) is an OSError naming `path`."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, path)
    except SafetensorError as error:  # safetensors reports I/O errors as its own type
        raise OSError(f"could not write {path}: {error}") from None


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.exists():
        raise FileNotFoundError(f"{path} not found")
    try:
        return load_file(path)
    except SafetensorError as error:
        raise RecordError(f"{path}: not a readable safetensors file ({error})") from None


@dataclass
class TrainingState:
    step: int
    history: list[dict[str, float]]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    torch_rng: torch.Tensor


def load_training_state(folder: Path) -> TrainingState:
    """The optimiser, schedule, RNG and history saved beside a checkpoint's weights."""
    from safetensors.torch import load_file

    saved = read_json_file(folder / "state.json")
    tensors = load_file(folder / "state.safetensors")
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    return TrainingState(saved["step"], saved["history"],
                         {"state": state, "param_groups": saved["param_groups"]},
                         saved["scheduler"], tensors["torch_rng"])


def checkpoints(run: Path) -> list[Path]:
    return sorted(run.glob(CHECKPOINT_GLOB))


def latest_checkpoint(run: Path, required: bool = True) -> Path | None:
    found = checkpoints(run)
    if not found and required:
        raise FileNotFoundError(f"no checkpoint (step_NNNNNN/) in {run}")
    return found[-1] if found else None


def checkpoint_folder(run: Path, which: str = "best") -> Path:
    """`best` (the best validation step, or the last checkpoint when no best was kept),
    `last`, or `step_NNNNNN`."""
    if which == BEST:
        return complete_folder(run / BEST, BEST_FILES) or latest_checkpoint(run)
    if which == "last":
        return latest_checkpoint(run)
    folder = run / which
    if not folder.name.startswith("step_") or not (folder / "model.safetensors").exists():
        raise FileNotFoundError(f"{run} has no checkpoint {which!r}; it has "
                                f"{', '.join(p.name for p in checkpoints(run)) or 'none'}")
    return folder


# --- loading --------------------------------------------------------------------------------


def read_run_info(run: Path) -> RunInfo:
    path = run / "model.json"
    if not path.exists():
        raise FileNotFoundError(f"{run} is not a unitaf run (no model.json): pass a folder "
                                "written by `unitaf train`")
    return RunInfo.from_dict(read_json_file(path), str(path))


@dataclass
class LoadedRun:
    """A run's model ready to predict, with what it was trained with."""

    path: Path
    info: RunInfo
    config: dict[str, Any]
    model: torch.nn.Module
    checkpoint: str  # which checkpoint folder the weights came from
    step: int
    rig: Any = None  # unitaf_model.model.rig.Rig, or None
    front_end: dict[str, np.ndarray] = field(default_factory=dict)

    def identity(self, speakers: list[str]) -> torch.Tensor:
        return torch.tensor([self.info.speakers.get(s, self.info.unknown_identity)
                             for s in speakers])

    def interval(self):
        from unitaf_model.training.losses import OpennessInterval

        found = self.info.mouth_interval
        return None if found is None else OpennessInterval(found["low"], found["high"])

    @property
    def sidecars(self) -> dict[str, list[str]]:
        """The feature sets and fields the run reads of each clip: its input and, with an
        expression residual, the clip's emotion embedding."""
        inputs, expression = self.info.inputs, self.info.expression
        wanted = {inputs["backbone_set"]: [inputs["backbone_field"]]}
        if expression is not None and not expression.on_label:
            fields = wanted.setdefault(expression.emotion_set, [])
            if expression.emotion_field not in fields:
                fields.append(expression.emotion_field)
        return wanted

    def predict_features(self, features: dict[str, dict[str, np.ndarray]],
                         speaker: str | None = None, emotion_label: str | None = None
                         ) -> np.ndarray:
        """One clip's face from its sidecar features (`Sample.features`); a residual on the
        emotion label reads `emotion_label` instead."""
        inputs, expression = self.info.inputs, self.info.expression
        emotion = None if expression is None else expression.one_hot(emotion_label) \
            if expression.on_label else features[expression.emotion_set][expression.emotion_field]
        return self.predict(features[inputs["backbone_set"]][inputs["backbone_field"]],
                            speaker, emotion)

    @torch.no_grad()
    def predict(self, inputs: np.ndarray, speaker: str | None = None,
                emotion: np.ndarray | None = None) -> np.ndarray:
        """One clip's input at the model's input rate ((T,) codes or (T, D) features) → face
        (ceil(T · fps / input_rate), C) at the model's fps (`info.fps`); `emotion` (E,) is the
        clip's emotion embedding, which a run with an expression residual needs."""
        device = next(self.model.parameters()).device
        tensor = torch.from_numpy(np.array(inputs)[None])
        tensor = tensor.long() if tensor.dtype in (torch.int16, torch.int32, torch.int64) \
            else tensor.float()
        if emotion is not None:
            emotion = torch.from_numpy(np.asarray(emotion, np.float32)[None]).to(device)
        face, _ = self.model(tensor.to(device), self.identity([speaker or ""]).to(device),
                             emotion)
        return face[0].float().cpu().numpy()


def load_run(folder: str | Path, checkpoint: str = BEST) -> LoadedRun:
    """A run folder with the weights of `checkpoint`, read-only (a Hub model repo id is
    resolved by `unitaf_model.hub.open_run`)."""
    from unitaf_model.model.unitaf import UniTAF

    run = Path(folder).resolve()
    info = read_run_info(run)
    folder = checkpoint_folder(run, checkpoint)
    args = info.model
    model = UniTAF(args.backbone, args.backbone_size, args.teacher_dim, args.face_type,
                   len(args.channels), torch.zeros(len(args.channels)),
                   identities=args.identities, fps=info.fps, input_rate=args.input_rate,
                   decoder_dilation=args.decoder_dilation)
    if info.expression is not None:
        model.add_expression(info.expression, args.channels)
    weights = folder / "model.safetensors"
    try:
        model.load_state_dict(load_weights(weights))
    except RuntimeError as error:  # other keys or shapes than model.json's model has
        raise RecordError(f"{weights}: not the weights of the model model.json describes "
                          f"({str(error)[:300]})") from None
    model.eval()
    config = typed(read_json_file(run / "config.json"), dict, str(run / "config.json"))
    return LoadedRun(path=run, info=info, config=config,
                     model=model, checkpoint=folder.name.removesuffix(".old"),
                     step=_step_of(folder),
                     rig=load_run_rig(run, info), front_end=_front_end(run))


def _step_of(folder: Path) -> int:
    if folder.name.removesuffix(".old") == BEST:
        path = folder / "best.json"
        return typed(record_keys(read_json_file(path), str(path), {"step", "metric", "value"})
                      ["step"], int, f"{path}.step")
    return int(folder.name.removeprefix("step_"))


def load_run_rig(run: Path, info: RunInfo):
    from unitaf_model.model.rig import demo_rig, load_rig

    if info.rig is None:
        return None
    if info.rig == "demo":
        return demo_rig()
    try:
        return load_rig(run / info.rig, info.model.channels)
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError) as error:  # np.load of an npz
        raise RecordError(f"{run / info.rig}: not a rig ({type(error).__name__}: "
                          f"{str(error)[:200]})") from None


def _front_end(run: Path) -> dict[str, np.ndarray]:
    path = run / "front_end.safetensors"
    if not path.exists():
        return {}
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(path)
    except SafetensorError as error:
        raise RecordError(f"{path}: not a readable safetensors file ({error})") from None


# --- the record a run begins with ---------------------------------------------------------


@dataclass(frozen=True)
class RunFiles:
    """Where a beginning run keeps the files its record names: the run folder, the rig the
    config asks for (`demo`, an npz path, or None without a rig), and whether this process
    writes them (one writer among data-parallel workers)."""

    out: Path
    rig: str | None
    write: bool = True

    def store_rig(self) -> str | None:
        """The rig's name in the run: `demo`, or its arrays copied into the run."""
        if self.rig is None:
            return None
        if self.rig == "demo":
            return "demo"
        if self.write:
            shutil.copyfile(self.rig, self.out / "rig.npz")
        return "rig.npz"

    def store_front_end(self, dataset: Dataset, name: str, field_name: str) -> dict[str, Any]:
        """How the run's input is computed from audio: the backbone set's backend and model
        (and, for offline units, the centroids themselves, saved in the run)."""
        backbone = dataset.feature_set(name)
        if "centroids_sha256" in backbone.custom and self.write:
            from safetensors.numpy import save_file

            from unitaf_data.features.units import load_centroids

            save_file({"centroids": load_centroids(dataset.root)},
                      self.out / "front_end.safetensors")
        return {"backend": backbone.backend, "set": name, "field": field_name,
                "model": backbone.model, "frame_rate": backbone.frame_rate}


def dataset_identity(dataset: Dataset, feature_sets: Iterable[str]) -> dict[str, Any]:
    """Where the dataset is and the sha256 of its records: what a run was trained on."""
    layout = dataset.layout
    return {**dataset.origin, "info_sha256": dataset.file_sha256(layout.INFO_KEY),
            "feature_sets": {name: dataset.file_sha256(layout.feature_info_key(name))
                             for name in sorted(feature_sets)}}


def new_run_info(cfg: TrainConfig, dataset: Dataset, spec: DataSpec, files: RunFiles,
                 mouth_interval: dict[str, float] | None) -> RunInfo:
    """What rebuilding and using a stage-I or II run's model needs besides its weights."""
    from unitaf_model.model.decoder import PRETRAINED_IDENTITIES

    info = dataset.info
    backbone = dataset.feature_set(cfg.backbone_set)
    teacher = dataset.feature_set(cfg.teacher_set)
    speakers = sorted({row["speaker"] for row in dataset.manifest() if row["split"] == "train"})
    args = ModelArgs(cfg.backbone, backbone.input_width(cfg.backbone_field, cfg.backbone),
                     teacher.input_width(cfg.teacher_field, "precomputed"),
                     info.face_type, info.channels,
                     PRETRAINED_IDENTITIES + len(speakers) + 1, spec.input_rate,
                     cfg.decoder_dilation)
    return RunInfo(
        stage=cfg.stage, model=args,
        inputs={"backbone_set": cfg.backbone_set, "backbone_field": cfg.backbone_field,
                "teacher_set": cfg.teacher_set, "teacher_field": cfg.teacher_field},
        fps=spec.fps, face_fps=info.fps,
        speakers={name: PRETRAINED_IDENTITIES + i for i, name in enumerate(speakers)},
        rig=files.store_rig(), mouth_interval=mouth_interval,
        front_end=files.store_front_end(dataset, cfg.backbone_set, cfg.backbone_field),
        dataset=dataset_identity(dataset, spec.sidecars))


def emotion_labels(dataset: Dataset) -> tuple[str, ...]:
    """The dataset's emotion labels, sorted: the rows of a residual's label embedding (a
    label no train clip has keeps its zero row: no expression offset of its own)."""
    labels = tuple(sorted({row["emotion"] for row in dataset.manifest()}))
    if not labels:
        raise ValueError(f"{dataset} has no clips with an emotion label")
    return labels


def _emotion_width(cfg: TrainConfig, dataset: Dataset) -> int:
    emotion = dataset.feature_set(cfg.emotion_set).field_spec(cfg.emotion_field)
    if len(emotion.shape) != 1 or emotion.time_varying:
        raise ValueError(f"{cfg.emotion_set}/{cfg.emotion_field} is {list(emotion.shape)}: "
                         "an emotion embedding is one (E,) vector per clip")
    return int(emotion.shape[0])


def stage3_run_info(cfg: TrainConfig, dataset: Dataset, spec: DataSpec, files: RunFiles
                    ) -> RunInfo:
    """The stage-II run's record, with the residual it gains and this run's dataset."""
    stage2 = read_run_info(Path(cfg.init))
    info = dataset.info
    if (info.face_type, tuple(info.channels)) != (stage2.model.face_type,
                                                  tuple(stage2.model.channels)) or \
            spec.input_rate != stage2.model.input_rate:
        raise ValueError(f"{dataset} does not match the stage-II run {cfg.init}: its "
                         "face type, channel order or input rate differ")
    labels = emotion_labels(dataset) if cfg.emotion_set == LABEL else ()
    expression = ExpressionArgs.for_channels(
        stage2.model.channels, cfg.emotion_set, cfg.emotion_field,
        len(labels) or _emotion_width(cfg, dataset), cfg.expression_width,
        cfg.expression_layers, labels, cfg.expression_smoothing)
    centroids = Path(cfg.init) / "front_end.safetensors"
    if centroids.exists() and files.write:
        shutil.copyfile(centroids, files.out / centroids.name)
    return dataclasses.replace(stage2, stage=3, rig=files.store_rig(),
                               expression=expression,
                               dataset=dataset_identity(dataset, spec.sidecars))


# --- runs at a storage URL: a local staging folder, pulled and pushed ----------------------

RUN_CACHE_ENV = "UNITAF_RUN_CACHE"
_IMMUTABLE = re.compile(r"step_\d{6}/")  # a checkpoint folder never changes once written


def run_staging(url: str) -> Path:
    """The local staging folder of a run at `url` (its checked bucket and prefix as path)."""
    storage = Storage.of(url)
    base = Path(os.environ.get(RUN_CACHE_ENV) or Path.home() / ".cache" / "unitaf" / "runs")
    return base / storage.protocol / storage.root.split("://", 1)[1]


def pull_run(url: str) -> Path:
    """Mirror the run at `url` into its staging folder (files there that the URL lacks are
    removed; checkpoints already staged are not fetched again); returns the folder."""
    storage, staging = Storage.of(url), run_staging(url)
    keys = storage.list()
    for key in keys:
        target = staging / key
        if _IMMUTABLE.match(key) and target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        partial.write_bytes(storage.read_bytes(key))
        partial.replace(target)
    wanted = set(keys)
    if staging.exists():
        for path in sorted(staging.rglob("*"), reverse=True):
            if path.is_file() and path.relative_to(staging).as_posix() not in wanted:
                path.unlink()
    return staging


def push_run(staging: Path, url: str, prefix: str = "") -> None:
    """Make the run at `url` (or its `prefix` folder) equal the staging folder: checkpoints
    first, then the records; objects the folder no longer holds (pruned checkpoints) are
    deleted last."""
    storage = Storage.of(url)
    remote = set(storage.list(prefix))
    folder = staging / prefix if prefix else staging
    local = sorted((p.relative_to(staging).as_posix(), p) for p in folder.rglob("*")
                   if p.is_file() and not p.name.endswith((".tmp", ".part")))
    local.sort(key=lambda item: not _IMMUTABLE.match(item[0]))  # checkpoints first
    for key, path in local:
        if not (_IMMUTABLE.match(key) and key in remote):
            storage.upload(key, path)
    for key in sorted(remote - {key for key, _ in local}):
        storage.remove(key)
