"""The training configuration: one dataclass holding every default, loaded from YAML and
dotted `key=value` overrides; unknown keys (with the closest valid ones) and wrong types are
errors. Each field's metadata holds its one-line meaning and its section: `config_keys` reads
it, so that `unitaf train --help` lists the keys from here, not from a second copy."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unitaf_data.dataset import write_json

if TYPE_CHECKING:
    from unitaf_data.features.augment import AugmentSettings
    from unitaf_model.training.data import DataSpec


_UNCHANGED = object()


def _key(section: str) -> Callable[..., Any]:
    """A field maker for one section of TrainConfig: `maker(default, help, before=...)` is a
    dataclass field whose metadata holds its one-line meaning, its section (`config_keys`)
    and, for a key added with a default that changed what training does, the value runs
    saved before the key existed behaved as (`before`; otherwise the default)."""

    def make(default: Any, help_text: str, before: Any = _UNCHANGED) -> Any:
        return field(default=default, metadata={
            "help": help_text, "section": section,
            "before": default if before is _UNCHANGED else before})

    return make


_data = _key("data")
_optimisation = _key("optimisation")
_stage_ii = _key("stage II")
_stage_iii = _key("stage III")
_bookkeeping = _key("bookkeeping")
_distribution = _key("distribution")


@dataclass
class TrainConfig:
    data: str = _data("", "dataset folder (build + extract-features), or a Hub dataset id")
    data_revision: str = _data("", "Hub datasets: the branch, tag or commit to read")
    out: str = _data("", "run folder")
    stage: int = _data(1, "1: projector → teacher; 2: projector + decoder → face; 3: + residual")
    backbone: str = _data("precomputed",
        "precomputed (tts_latent, or offline Whisper states) | units")
    backbone_set: str = _data("whisper", "feature set the backbone reads")
    backbone_field: str = _data("teacher.npy", "field of that set")
    teacher_set: str = _data("whisper", "feature set of the stage-1 target (teacher features)")
    teacher_field: str = _data("teacher.npy", "field of that set")
    fps: float = _data(0.0, "the face rate the decoder runs at; 0: the dataset's face rate")
    batch_size: int = _data(8, "clips per step (per worker)")
    shuffle_buffer: int = _data(64, "clips held for shuffling the stream")
    loader_workers: int = _data(0, "data loader processes (0: in the training process)")
    skip_bad: bool = _data(False, "skip (and count) bad samples instead of stopping")
    augment_share: float = _data(0.0,
        "share of train clips replaced by an augmented copy (0: off)")
    augment_set: str = _data("whisper_aug", "set of those copies (extract-features --augment N)")

    steps: int = _optimisation(400, "optimiser steps of the stage")
    lr: float = _optimisation(2e-3, "peak learning rate (AdamW)")
    warmup_steps: int = _optimisation(40, "linear warm-up, then cosine decay to 10% of lr")
    weight_decay: float = _optimisation(0.01, "AdamW weight decay")
    grad_clip: float = _optimisation(1.0, "gradient norm clip")
    seed: int = _optimisation(0, "seed of the weights and of the data order")

    init: str = _stage_ii("", "stage-1 run whose projector (and backbone) stage 2 starts from")
    unitalker_ckpt: str = _stage_ii("", "optional pretrained UniTalker decoder (.pt)")
    rig: str = _stage_ii("demo", "demo (built in) or a UniTalker ARKit rig .npz")
    decoder_dropout: float = _stage_ii(0.1, "UniTalker's dropout on the decoder's feature map")
    decoder_dilation: int = _stage_ii(1, "1: UniTalker's receptive field (7 frames); 2: 15 frames")
    coefficient_weight: float = _stage_ii(1.0, "weight of the face-coefficient MSE")
    vertex_weight: float = _stage_ii(1.0, "λ: weight of the vertex loss")
    vertex_scale: float = _stage_ii(100.0, "vertices are in metres: error in centimetres")
    mouth_alpha: float = _stage_ii(3.0,
        "α of the mouth weight α·|n − 0.5|^γ (n: normalised openness)")
    mouth_gamma: float = _stage_ii(2.0, "γ of that weight")
    mouth_coverage: float = _stage_ii(0.95,
        "share of train frames the mouth-openness interval spans")
    mouth_aware: bool = _stage_ii(True, "mouth-state-aware vertex loss (False: plain vertex MSE)")
    expression_target: str = _stage_ii("clip",
        "what stage II learns on the expression channels: clip (the clip's own) | mean (the "
        "train-mean face: the articulation alone, the expression left to stage III's residual)")
    closure_weight: float = _stage_ii(0.0,
        "weight of the bilabial-closure loss: per /p b m/ phone of a clip with phones, the "
        "squared amount by which the predicted mouth's most closed frame is more open than "
        "ground truth's (what BCS reads; an augmented copy's phones move with it); 0: off")
    velocity_weight: float = _stage_ii(0.0,
        "weight of VOCA's velocity loss: frame-to-frame coefficient changes against ground "
        "truth's (lowers jitter; in stage III it shapes the residual only)")

    emotion_set: str = _stage_iii("utterance",
        "the residual's emotion: label (the corpus label, a learned embedding; --emotion at "
        "synthesis) | utterance | emovec (an embedding of the clip's audio, a feature set)")
    emotion_field: str = _stage_iii("utterance.npy", "field of that set (unused for label)")
    expression_width: int = _stage_iii(128, "hidden width of the expression residual")
    expression_layers: int = _stage_iii(3, "layers of the expression residual")
    expression_dropout: float = _stage_iii(0.1, "dropout in the expression residual")
    expression_smoothing: int = _stage_iii(3,
        "frames of the moving average over the residual's output (odd; 1: none); 3 damps "
        "the frame-to-frame flicker the residual adds", before=1)

    log_every: int = _bookkeeping(20, "steps between train metrics in TensorBoard and the log")
    best_metric: str = _bookkeeping("loss", "validation metric whose lowest step is kept in best/")
    val_every: int = _bookkeeping(100, "steps between validations")
    checkpoint_every: int = _bookkeeping(200, "steps between checkpoints (step_NNNNNN/)")
    keep_checkpoints: int = _bookkeeping(2, "newest checkpoints kept")

    num_workers: int = _distribution(1, "Ray Train workers; >1 or use_gpu runs on Ray Train")
    use_gpu: bool = _distribution(False, "train on GPUs (bf16 autocast; runs on Ray Train)")

    def checked(self) -> TrainConfig:
        """This config, when its values fit together; a ValueError naming the key otherwise."""
        if not self.data or not self.out:
            raise ValueError("data and out are required")
        if self.stage not in (1, 2, 3):
            raise ValueError(f"stage must be 1, 2 or 3, not {self.stage}")
        if self.stage == 2 and not self.init and not self.unitalker_ckpt:
            raise ValueError("stage 2 starts from a stage-1 run: pass --init RUN")
        if self.stage == 3 and not self.init:
            raise ValueError("stage 3 trains on a frozen stage-2 run: pass --init RUN")
        if self.backbone not in ("units", "precomputed"):
            raise ValueError(f"backbone must be units or precomputed, not {self.backbone}")
        if self.steps <= 0 or self.batch_size <= 0:
            raise ValueError("steps and batch_size must be positive")
        if self.expression_target not in ("clip", "mean"):
            raise ValueError(f"expression_target must be clip or mean, not "
                             f"{self.expression_target}")
        if self.fps < 0:
            raise ValueError(f"fps must be positive, or 0 for the dataset's, not {self.fps}")
        self._validate_augment()
        return self

    def _validate_augment(self) -> None:
        """Augmented copies hold Whisper states, utterance embeddings and faces: they can
        stand in for a clip only when every input the stage reads is one of those."""
        if not 0.0 <= self.augment_share <= 1.0:
            raise ValueError(f"augment_share must lie in [0, 1], not {self.augment_share}")
        reads = {(self.backbone_set, self.backbone_field), (self.teacher_set,
                                                             self.teacher_field)}
        if self.stage == 3 and self.emotion_set != "label":  # a label survives any audio
            reads.add((self.emotion_set, self.emotion_field))
        allowed = {("whisper", "teacher.npy"), ("utterance", "utterance.npy")}
        if self.augment_share and not reads <= allowed:
            raise ValueError(
                "augment_share > 0 needs backbone and teacher from whisper/teacher.npy (and "
                "stage III's emotion from utterance/utterance.npy): augmented copies have "
                f"no {', '.join(sorted(f'{s}/{f}' for s, f in reads - allowed))}")

    def data_spec(self, fps: float | None = None, input_rate: float = 50.0,
                  augment: AugmentSettings | None = None) -> DataSpec:
        """The loader's view of this config; `fps` resolves `fps=0` (the dataset's rate);
        `augment`: how the augmented set made its copies (from its feature.json)."""
        from unitaf_model.training.data import DataSpec

        emotion = (self.emotion_set, self.emotion_field) if self.stage == 3 else ("", "")
        return DataSpec(self.backbone_set, self.backbone_field, self.teacher_set,
                        self.teacher_field, fps or self.fps, self.batch_size,
                        self.shuffle_buffer, self.seed, self.skip_bad, input_rate, *emotion,
                        augment_share=self.augment_share, augment_set=self.augment_set,
                        augment=augment)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The sections a stage does not read: keys only a later stage uses.
_UNREAD_SECTIONS = {1: ("stage II", "stage III"), 2: ("stage III",), 3: ()}


def config_differences(saved: Any, wanted: TrainConfig, ignored: tuple[str, ...] = ()
                       ) -> list[str]:
    """`key saved → wanted` for each key of `wanted`'s stage whose value differs from the
    saved config's (a run's `config.json`); a key the saved config lacks (a run saved before
    the key existed) reads as the value such runs behaved as. Keys in `ignored`, and keys only
    later stages read, never count."""
    saved = saved if isinstance(saved, dict) else {}
    values = wanted.to_dict()
    unread = _UNREAD_SECTIONS.get(wanted.stage, ())
    return [f"{f.name} {saved.get(f.name, '(unset)')!r} → {values[f.name]!r}"
            for f in dataclasses.fields(TrainConfig)
            if f.name not in ignored and f.metadata["section"] not in unread
            and saved.get(f.name, f.metadata["before"]) != values[f.name]]


def _convert(name: str, kind: Any, value: Any) -> Any:
    kind = {"int": int, "float": float, "bool": bool, "str": str}.get(kind, kind)
    if kind is bool and isinstance(value, str):
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"{name}: {value!r} is not a boolean")
        return value.lower() in ("true", "1", "yes")
    try:
        converted = kind(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name}: {value!r} is not a {kind.__name__}") from error
    if kind is int and isinstance(value, float) and value != converted:
        raise ValueError(f"{name}: {value!r} is not an int")
    return converted


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                **values: Any) -> TrainConfig:
    """Defaults ← YAML file ← keyword values ← `key=value` overrides, type-checked."""
    import yaml

    fields = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    merged: dict[str, Any] = {}
    if path:
        merged |= yaml.safe_load(Path(path).read_text()) or {}
    merged |= {k: v for k, v in values.items() if v is not None}
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value")
        key, value = item.split("=", 1)
        merged[key.strip()] = value
    unknown = sorted(set(merged) - set(fields))
    if unknown:
        raise ValueError("; ".join(_unknown_key(key, list(fields)) for key in unknown))
    return TrainConfig(**{k: _convert(k, fields[k], v) for k, v in merged.items()}).checked()


def save_config(config: TrainConfig, path: Path) -> None:
    """The resolved config as JSON, written whole (temporary name, then renamed)."""
    write_json(path, config.to_dict())


def _unknown_key(key: str, names: list[str]) -> str:
    close = difflib.get_close_matches(key, names, n=3)
    return f"unknown config key {key!r}: " + (
        f"did you mean {' or '.join(close)}?" if close else "`unitaf train --help` lists them")


@dataclass(frozen=True)
class ConfigKey:
    name: str
    type: str
    default: Any
    meaning: str  # the field's one-line help
    section: str  # the group it belongs to (data, optimisation, ...)


def config_keys() -> list[ConfigKey]:
    """Every `TrainConfig` key in declaration order, with its default, its meaning and its
    section (the field's metadata)."""
    return [ConfigKey(f.name, f.type, f.default, f.metadata["help"], f.metadata["section"])
            for f in dataclasses.fields(TrainConfig)]
