"""Shared fixtures: one ~1-minute demo dataset built through Ray, reused by the e2e tests."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

SHARED_REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
CHECKPOINT_KEYS = SHARED_REFERENCE / "unitalker_checkpoint_keys.txt"


def reference_checkpoint_shapes(checkpoint: str) -> dict[str, tuple[int, ...]]:
    """{key: shape} of one released UniTalker checkpoint, from the reference key list."""
    shapes, current = {}, None
    for line in CHECKPOINT_KEYS.read_text().splitlines():
        if line.startswith("====="):
            current = line.strip("= ").strip()
        elif line.strip() and current == checkpoint:
            key, shape = line.split(None, 1)
            shapes[key] = tuple(int(n) for n in re.findall(r"\d+", shape))
    return shapes


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory):
    """(config, summary) of a 1-minute demo build on local Ray."""
    from unitaf_pipelines.build import BuildConfig, run_build

    config = BuildConfig(source="demo", out_dir=tmp_path_factory.mktemp("demo") / "dataset",
                         demo_minutes=1.0, seed=3, progress=False)
    return config, run_build(config)


@pytest.fixture
def demo_copy(demo_build, tmp_path) -> Path:
    """A fresh copy of the demo dataset, for a test that adds feature sets to it."""
    pytest.importorskip("espeakng_loader")
    dataset = tmp_path / "dataset"
    shutil.copytree(demo_build[0].out_dir, dataset)
    return dataset


@pytest.fixture
def hub_offline(monkeypatch):
    """The Hugging Face Hub in offline mode (read once at import, so patched where read)."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="session", autouse=True)
def _shutdown_ray():
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()
