"""The two-stage UniTAF training recipe (torchtune-style lifecycle, nanoGPT-flat loop).

Stage I trains the projector (and the unit embedding) so that `Projector(F_TTS)` matches the
teacher's features of the ground-truth audio (masked MSE on the 25 fps grid). Stage II starts
from a stage-I run and trains projector and decoder on the face: coefficient loss +
λ · mouth-state-aware vertex loss through a rig. Stage III starts from a stage-II run,
freezes all of it and trains only the expression residual (`unitaf_model.model.expression`) on the
same losses, reading the clip's emotion embedding besides the stage-II inputs. Every step's
data is deterministic given the seed, so a run resumed from `step_{n}/` continues the
uninterrupted loss curve exactly.

    recipe = Recipe(config)       # validates
    recipe.setup()                # data, run record, model, optimiser, resume
    recipe.train()                # the loop: log, validate, checkpoint, keep the best
    recipe.cleanup()

What the model needs besides its weights (widths, speakers, rig, mouth interval, front end,
the dataset's identity) is written once, to `model.json`, when a run begins (`unitaf_model.run`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unitaf_data import owned
from unitaf_data.dataset import write_json
from unitaf_data.face import expression_channels
from unitaf_data.hub import open_dataset
from unitaf_model.model.projector import parameter_count
from unitaf_model.model.rig import Rig, demo_rig, load_rig
from unitaf_model.model.unitaf import UniTAF
from unitaf_model.run import (
    BEST,
    LoadedRun,
    RunFiles,
    checkpoint_folder,
    checkpoints,
    latest_checkpoint,
    load_run_rig,
    load_training_state,
    load_weights,
    new_run_info,
    read_run_info,
    recover_run,
    save_best,
    save_checkpoint,
    stage3_run_info,
)
from unitaf_model.training.config import TrainConfig, save_config
from unitaf_model.training.data import augment_settings, loader, train_statistics
from unitaf_model.training.losses import (
    OpennessInterval,
    closure_loss,
    fit_openness_interval,
    masked_mse,
    rig_terms,
    velocity_loss,
    vertex_loss,
)

log = logging.getLogger(__name__)


class Recipe:
    def __init__(self, config: TrainConfig, rank: int = 0, world: int = 1) -> None:
        self.config = resolved(config)
        self.rank, self.world = rank, world
        self.out = Path(config.out)
        self.device = torch.device("cuda" if config.use_gpu and torch.cuda.is_available()
                                   else "cpu")
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.writer = None

    # --- setup ---------------------------------------------------------------------------

    def setup(self) -> None:
        """Data, the run record (written when the run begins, read when it resumes), model,
        optimiser, the run's last checkpoint when it has one, and the training stream
        (replayed to the resumed step)."""
        cfg = self.config
        torch.manual_seed(cfg.seed)
        if self.rank == 0:
            owned.claim(self.out, "run", "pass a new --out, or an empty folder")
            recover_run(self.out)  # what a crash in the middle of a checkpoint left
        else:
            self.out.mkdir(parents=True, exist_ok=True)
        self.dataset = open_dataset(cfg.data, cfg.data_revision or None)
        input_rate = self.dataset.feature_set(cfg.backbone_set).frame_rate
        if input_rate is None:
            raise ValueError(f"backbone_set {cfg.backbone_set} has no frame rate: it is not a "
                             "time series the projector can read")
        self.spec = cfg.data_spec(cfg.fps or self.dataset.info.fps, input_rate,
                                  augment_settings(self.dataset, cfg))
        self.dataset.check_sidecars(self.spec.sidecars, ["train", "val"])
        self.dataset.check_sidecars(self.spec.sidecars_for("train"), ["train"])
        resuming = latest_checkpoint(self.out, required=False) is not None
        if resuming:
            self.run_info = read_run_info(self.out)
            self.rig = load_run_rig(self.out, self.run_info)
            template = None
        elif cfg.stage == 3:
            self.rig = self._setup_rig()
            self.run_info = stage3_run_info(cfg, self.dataset, self.spec, self._run_files())
            template = None  # the stage-II weights hold it
        else:
            self.rig = self._setup_rig()
            template, openness = train_statistics(
                self.dataset, self.spec.fps, self.rig if cfg.stage == 2 else None)
            self.run_info = new_run_info(cfg, self.dataset, self.spec, self._run_files(),
                                         self._setup_interval(openness))
        if self.run_info.expression is not None and self.run_info.expression.on_label:
            self.spec = dataclasses.replace(
                self.spec, emotion_labels=self.run_info.expression.emotion_labels)
        found = self.run_info.mouth_interval
        self.interval = OpennessInterval(found["low"], found["high"]) \
            if found is not None and cfg.mouth_aware else None
        self.rig_terms = None if self.rig is None else rig_terms(self.rig, self.device)
        self.model = self._setup_model(template)
        self.optimizer, self.scheduler = self._setup_optimizer()
        if self.rank == 0 and not resuming:
            save_config(cfg, self.out / "config.json")
            write_json(self.out / "model.json", self.run_info.to_dict())
        self._resume()
        self.batches = iter(loader(self.dataset, self.spec, "train", self.rank, self.world,
                                   cfg.loader_workers))
        for _ in range(self.step):  # the data stream is deterministic: replay its position
            next(self.batches)
        self.writer = self._setup_writer()

    def _run_files(self) -> RunFiles:
        """Where the run record's files go (written by rank 0 only)."""
        return RunFiles(self.out, self.config.rig if self.rig is not None else None,
                        write=self.rank == 0)

    def identities(self, speakers: list[str]) -> torch.Tensor:
        return torch.tensor([self.run_info.speakers.get(s, self.run_info.unknown_identity)
                             for s in speakers], device=self.device)

    def _setup_rig(self) -> Rig | None:
        if self.dataset.info.face_type != "arkit51":
            log.warning("face type %s has no vertex rig: stage II uses the coefficient loss "
                        "only", self.dataset.info.face_type)
            return None
        return demo_rig() if self.config.rig == "demo" else load_rig(self.config.rig)

    def _setup_interval(self, openness: np.ndarray | None) -> dict[str, float] | None:
        """The mouth-openness interval fitted on the training frames (kept in the run)."""
        if openness is None:
            return None
        cfg = self.config
        interval = fit_openness_interval(openness, cfg.mouth_coverage, cfg.mouth_alpha,
                                         cfg.mouth_gamma)
        return {"low": interval.low, "high": interval.high, "coverage": cfg.mouth_coverage,
                "frames": len(openness)}

    def _setup_model(self, template: torch.Tensor | None) -> torch.nn.Module:
        cfg, args = self.config, self.run_info.model
        model = UniTAF(args.backbone, args.backbone_size, args.teacher_dim, args.face_type,
                       len(args.channels), torch.zeros(len(args.channels))
                       if template is None else template, fps=self.run_info.fps,
                       input_rate=args.input_rate, decoder_dilation=args.decoder_dilation)
        if cfg.unitalker_ckpt:
            from unitaf_data.features.unitalker import read_checkpoint

            report = model.decoder.load_unitalker(read_checkpoint(cfg.unitalker_ckpt))
            log.info("UniTalker decoder: missing %s, unexpected %s", report.missing_keys,
                     report.unexpected_keys)
        model.decoder.add_identities(args.identities - model.decoder.identities)
        model.decoder.decoder.dropout.p = cfg.decoder_dropout
        if cfg.stage == 3:
            self._freeze_stage2(model, Path(cfg.init))
        elif cfg.init:
            state = load_weights(latest_checkpoint(Path(cfg.init)) / "model.safetensors")
            kept = {k: v for k, v in state.items() if k.startswith(("backbone.", "projector."))}
            model.load_state_dict(kept, strict=False)
            log.info("started from %s (%d tensors)", cfg.init, len(kept))
        if cfg.stage == 1:
            model.decoder.requires_grad_(False)
        log.info("projector: %d parameters (%d → %d)", parameter_count(model.projector),
                 model.projector.down.in_channels, args.teacher_dim)
        model.to(self.device)
        if self.world > 1:
            import ray.train.torch

            model = ray.train.torch.prepare_model(model, parallel_strategy_kwargs={
                "find_unused_parameters": cfg.stage == 1})
        return model

    def _freeze_stage2(self, model: UniTAF, stage2: Path) -> None:
        """All of the stage-II run's weights (those `unitaf eval` picks), frozen; only the
        new residual trains."""
        model.add_expression(self.run_info.expression, self.run_info.model.channels,
                             self.config.expression_dropout)
        folder = checkpoint_folder(stage2, BEST)
        result = model.load_state_dict(load_weights(folder / "model.safetensors"),
                                       strict=False)
        if result.unexpected_keys or any(not k.startswith("expression.")
                                         for k in result.missing_keys):
            raise ValueError(f"{folder} does not hold the stage-II model {stage2} describes")
        model.requires_grad_(False)
        model.expression.requires_grad_(True)
        log.info("stage II frozen from %s (%s); residual: %d parameters", stage2, folder.name,
                 parameter_count(model.expression))

    def _setup_optimizer(self):
        cfg = self.config
        trained = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trained, lr=cfg.lr, weight_decay=cfg.weight_decay)

        def schedule(step: int) -> float:  # linear warm-up, then cosine to 10% over `steps`
            if step < cfg.warmup_steps:
                return (step + 1) / cfg.warmup_steps
            progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
            return 0.1 + 0.45 * (1 + math.cos(math.pi * min(progress, 1.0)))

        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)

    def _setup_writer(self):
        if self.rank != 0:
            return None
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(self.out / "tensorboard"))

    # --- the loop ------------------------------------------------------------------------

    @property
    def mask_name(self) -> str:
        """Stage I is scored on the projector's grid, the later stages on the face's."""
        return "teacher_mask" if self.config.stage == 1 else "mask"

    @property
    def core(self) -> UniTAF:
        return getattr(self.model, "module", self.model)

    def losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        cfg = self.config
        inputs = batch["inputs"].to(self.device)
        mask = batch[self.mask_name].to(self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16,
                            enabled=self.device.type == "cuda"):
            if cfg.stage == 1:
                projected = self.core.project(inputs) if self.world == 1 else \
                    self.model(inputs, self.identities(batch["speakers"]))[1]
                return {"loss": masked_mse(projected.float(), batch["teacher"].to(self.device),
                                           mask)}
            emotion = batch["emotion"].to(self.device) if "emotion" in batch else None
            face, _ = self.model(inputs, self.identities(batch["speakers"]), emotion,
                                 batch["teacher_mask"].sum(1))
        face, target = face.float(), self._target(batch["face"].to(self.device))
        parts = {"coefficient": masked_mse(face, target, mask)}
        loss = cfg.coefficient_weight * parts["coefficient"]
        if self.rig is not None:
            parts["vertex"] = vertex_loss(face, target, mask, self.rig_terms, self.interval,
                                          cfg.mouth_alpha, cfg.mouth_gamma, cfg.vertex_scale)
            loss = loss + cfg.vertex_weight * parts["vertex"]
        if cfg.closure_weight and self.rig is not None:
            parts["closure"] = closure_loss(face, target, batch["bilabial"].to(self.device),
                                            self.rig_terms, cfg.vertex_scale)
            loss = loss + cfg.closure_weight * parts["closure"]
        if cfg.velocity_weight:
            parts["velocity"] = velocity_loss(face, target, mask)
            loss = loss + cfg.velocity_weight * parts["velocity"]
        return {"loss": loss, **parts}

    def _target(self, face: torch.Tensor) -> torch.Tensor:
        """The face a stage-II/III step is scored against: the clip's, or with
        `expression_target: mean` in stage II the train-mean face on the expression channels
        (which stage III's residual then learns from the emotion)."""
        if self.config.stage != 2 or self.config.expression_target == "clip":
            return face
        channels = self.run_info.model.channels
        index = [channels.index(c) for c in expression_channels(channels)]
        face = face.clone()
        face[..., index] = self.core.template[index]
        return face

    def train(self, progress=None) -> list[dict[str, float]]:
        """The loop; `progress(step, record)` is called after every step when given."""
        cfg = self.config
        if self.step == 0:
            self.validate()  # where the run starts from, for the curve and the tests
        clock, clips = time.perf_counter(), 0
        while self.step < cfg.steps:
            batch = next(self.batches)
            self._train_mode()
            parts = self.losses(batch)
            self.optimizer.zero_grad(set_to_none=True)
            parts["loss"].backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(
                [p for p in self.model.parameters() if p.requires_grad], cfg.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            clips += len(batch["keys"])
            record = {"step": self.step, **{k: float(v.detach()) for k, v in parts.items()}}
            self.history.append(record)
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                elapsed = time.perf_counter() - clock
                self._log({**record, "lr": self.scheduler.get_last_lr()[0],
                           "grad_norm": float(grad_norm), "clips_per_s": clips / elapsed})
                clock, clips = time.perf_counter(), 0
            if progress is not None and self.rank == 0:
                progress(self.step, record)
            if self.step % cfg.val_every == 0 or self.step == cfg.steps:
                self.validate()
            if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                self.save_checkpoint()
        return self.history

    def _train_mode(self) -> None:
        self.model.train()
        if self.config.stage == 3:  # the frozen stage-II model keeps its dropout off
            self.core.eval()
            self.core.expression.train()

    def _log(self, metrics: dict[str, float], prefix: str = "train") -> None:
        if self.rank != 0:
            return
        log.debug("%s step %d: %s", prefix, self.step,
                  ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k != "step"))
        for name, value in metrics.items():
            if name != "step":
                self.writer.add_scalar(f"{prefix}/{name}", value, self.step)

    # --- validation ----------------------------------------------------------------------

    def validate(self) -> dict[str, float]:
        """Evaluate on the val split, log it (TensorBoard, validation.jsonl), keep the best
        step's weights, and return the metrics: losses (all workers), and in stage II the
        eval metrics of `unitaf_model.evaluation.evaluate` for the model and the train-mean face
        (rank 0)."""
        metrics = self.split_losses("val")
        if self.rank == 0 and self.config.stage > 1:
            metrics |= self._face_metrics()
        self._log(metrics, "val")
        if self.rank == 0:
            with (self.out / "validation.jsonl").open("a") as handle:
                handle.write(json.dumps({"step": self.step, **metrics}) + "\n")
            self._keep_best(metrics)
        return metrics

    VALIDATION_METRICS = ("lve", "mouth_l2", "bcs", "jaw_open_correlation", "jitter_mouth_ratio",
                          "expression_l2", "fdd")

    def _face_metrics(self) -> dict[str, float]:
        from unitaf_model.evaluation.evaluate import MEAN_FACE, clip_figure, evaluate

        self.model.eval()
        current = LoadedRun(path=self.out, info=self.run_info, config=self.config.to_dict(),
                            model=self.core, checkpoint="current", step=self.step,
                            rig=self.rig)
        evaluation = evaluate([current], self.dataset, "val")
        mine, mean = evaluation.scores[self.out.name], evaluation.scores[MEAN_FACE]
        found = {name: mine[name].value for name in self.VALIDATION_METRICS if name in mine}
        if "lve" in mean:
            found["mean_face_lve"] = mean["lve"].value
        self.writer.add_figure("val/mouth", clip_figure(evaluation, self.out.name), self.step)
        return found

    def _keep_best(self, metrics: dict[str, float]) -> None:
        """`best/`: the weights of the step with the lowest validation `best_metric` (steps
        after the first only: step 0 is the untrained start)."""
        name = self.config.best_metric
        if self.step == 0 or name not in metrics:
            return
        path = self.out / BEST / "best.json"
        if path.exists() and json.loads(path.read_text())["value"] <= metrics[name]:
            return
        save_best(self.out, self.core.state_dict(),
                  {"step": self.step, "metric": f"val/{name}", "value": metrics[name]})

    @torch.no_grad()
    def split_losses(self, split: str) -> dict[str, float]:
        """The losses on a split, per frame, summed over every worker's share."""
        self.model.eval()
        sums: dict[str, float] = {}
        for batch in loader(self.dataset, self.spec, split, self.rank, self.world,
                            endless=False):
            frames = float(batch[self.mask_name].sum())
            for name, value in self.losses(batch).items():
                sums[name] = sums.get(name, 0.0) + float(value) * frames
            sums["frames"] = sums.get("frames", 0.0) + frames
        totals = self._all_reduce(sums)
        return {k: v / max(totals["frames"], 1.0) for k, v in totals.items() if k != "frames"}

    def _all_reduce(self, sums: dict[str, float]) -> dict[str, float]:
        if self.world == 1:
            return sums
        import torch.distributed as dist

        names = sorted(sums)
        values = torch.tensor([sums[n] for n in names], dtype=torch.float64,
                              device=self.device)
        dist.all_reduce(values)
        return dict(zip(names, values.tolist(), strict=True))

    # --- checkpoints ---------------------------------------------------------------------

    def save_checkpoint(self) -> None:
        if self.rank != 0:
            return
        save_checkpoint(self.out / f"step_{self.step:06d}", self.core.state_dict(),
                        self.optimizer, self.scheduler, self.step, self.history)
        for old in checkpoints(self.out)[:-self.config.keep_checkpoints]:
            shutil.rmtree(old)

    def _resume(self) -> None:
        folder = latest_checkpoint(self.out, required=False)
        if folder is None:
            return
        self.core.load_state_dict(load_weights(folder / "model.safetensors"))
        state = load_training_state(folder)
        self.optimizer.load_state_dict(state.optimizer)
        self.scheduler.load_state_dict(state.scheduler)
        self.step, self.history = state.step, state.history
        torch.set_rng_state(state.torch_rng)
        log.info("resumed from %s at step %d", folder, self.step)

    def cleanup(self) -> None:
        if self.writer is not None:
            self.writer.close()


def resolved(config: TrainConfig) -> TrainConfig:
    """The config a run trains with (and saves): validated, and for stage III with the
    inputs of its stage-II run."""
    config = config.checked()
    return with_stage2_inputs(config) if config.stage == 3 else config


def with_stage2_inputs(config: TrainConfig) -> TrainConfig:
    """Stage III reads what its stage-II run (`init`) read: that run's backbone, teacher,
    face rate and rig win over the config's (with a warning where they differ)."""
    init = Path(config.init)
    info = read_run_info(init)
    if info.stage != 2:
        raise ValueError(f"stage 3 starts from a stage-2 run; {init} is a stage-{info.stage} run")
    rig = {"demo": "demo", "rig.npz": str(init / "rig.npz"), None: config.rig}[info.rig]
    adopted = dataclasses.replace(config, backbone=info.model.backbone, fps=info.fps, rig=rig,
                                  **info.inputs)
    changed = [f"{name}={getattr(adopted, name)}" for name in ("backbone", "fps", "rig",
                                                               *info.inputs)
               if getattr(adopted, name) != getattr(config, name)]
    if changed:
        log.warning("stage 3 reads what %s was trained on: %s", init, ", ".join(changed))
    return adopted


def run_recipe(config: TrainConfig, rank: int = 0, world: int = 1, progress=None
               ) -> list[dict[str, float]]:
    recipe = Recipe(config, rank, world)
    recipe.setup()
    try:
        return recipe.train(progress)
    finally:
        recipe.cleanup()
