"""Run folders for tests: one written through the run writers with a random-weight model,
for the commands that read runs (`infer`, `animate`) without training one; and the demo
configs' stages I and II, shortened, on a dataset."""

from __future__ import annotations

from pathlib import Path

import torch

from unitaf_data.dataset import write_json
from unitaf_data.face import ARKIT51
from unitaf_model.model.decoder import PRETRAINED_IDENTITIES
from unitaf_model.model.expression import ExpressionArgs
from unitaf_model.model.unitaf import UniTAF
from unitaf_model.run import ModelArgs, RunInfo, save_weights


def train_demo_stages(dataset: Path, root: Path, overrides: list[str]) -> Path:
    """Stages I then II of the shipped demo configs with `overrides`, into ROOT/stage1 and
    ROOT/stage2; returns the stage-II run."""
    from unitaf_model.training.config import load_config
    from unitaf_model.training.launcher import train

    configs = Path(__file__).resolve().parents[1] / "configs"
    train(load_config(configs / "demo_stage1.yaml", overrides, data=str(dataset),
                      out=str(root / "stage1")))
    # the demo config trains on augmented copies; test datasets are extracted without them
    train(load_config(configs / "demo_stage2.yaml", ["augment_share=0", *overrides],
                      data=str(dataset),
                      out=str(root / "stage2"), init=str(root / "stage1")))
    return root / "stage2"


def write_random_run(root: Path, backbone: str, backbone_size: int, backbone_set: str,
                     backbone_field: str, front_end: dict, teacher_dim: int = 64,
                     rig: str | None = "demo", seed: int = 0,
                     emotion: tuple[str, str, int] | None = None) -> Path:
    """A run whose decoder heads are random (not zero) so the face follows its input; with
    `emotion` (set, field, width), a stage-III run whose residual reads that embedding."""
    channels = ARKIT51.channels
    args = ModelArgs(backbone, backbone_size, teacher_dim, ARKIT51.name, channels,
                     PRETRAINED_IDENTITIES + 2)
    expression = None if emotion is None else ExpressionArgs.for_channels(
        channels, *emotion, width=16, layers=2)
    info = RunInfo(stage=2 if emotion is None else 3, model=args, fps=25.0, face_fps=30.0,
                   inputs={"backbone_set": backbone_set, "backbone_field": backbone_field,
                           "teacher_set": "whisper", "teacher_field": "teacher.npy"},
                   speakers={"spk0": PRETRAINED_IDENTITIES}, rig=rig, mouth_interval=None,
                   front_end=front_end, dataset={"path": str(root / "no-dataset")},
                   expression=expression)
    torch.manual_seed(seed)
    model = UniTAF(backbone, backbone_size, teacher_dim, ARKIT51.name, len(channels),
                   torch.full((len(channels),), 0.1), identities=args.identities)
    if expression is not None:
        model.add_expression(expression, channels)
    for parameter in [*model.decoder.out_head_dict.parameters(),
                      *(() if expression is None else model.expression.head.parameters())]:
        torch.nn.init.normal_(parameter, std=0.05)
    (root / "step_000001").mkdir(parents=True)
    save_weights(model.state_dict(), root / "step_000001" / "model.safetensors")
    write_json(root / "model.json", info.to_dict())
    write_json(root / "config.json", {"stage": info.stage})
    return root
