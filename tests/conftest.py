"""Shared fixtures: one ~1-minute demo dataset built through Ray, and one copy of it with the
offline feature sets, reused by every test that needs them. Tests keep their Hugging Face
caches in a temporary folder."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Before any Hugging Face import: tests never write into the user's ~/.cache/huggingface.
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="unitaf-tests-hf-")

from reference import DEMO_SETS

RAY_FIXTURES = {"demo_build", "demo_features", "demo_copy"}


def pytest_collection_modifyitems(items):
    """Every test that needs a demo dataset built through Ray is in the slow lane (`e2e`)."""
    for item in items:
        if RAY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory):
    """(config, summary) of a 1-minute demo build on local Ray."""
    pytest.importorskip("espeakng_loader")
    from unitaf_pipelines.build import BuildConfig, run_build

    config = BuildConfig(source="demo", out_dir=tmp_path_factory.mktemp("demo") / "dataset",
                         demo_minutes=1.0, seed=3, progress=False)
    return config, run_build(config)


@pytest.fixture(scope="session")
def demo_features(demo_build, tmp_path_factory) -> Path:
    """A copy of the demo dataset with fitted units (k=32) and the offline feature sets
    (whisper, units, utterance). Tests must not modify it: copy it (`demo_copy`) first."""
    from unitaf_data.extract import fit_units
    from unitaf_pipelines.extract import ExtractConfig, run_extract

    dataset = tmp_path_factory.mktemp("features") / "dataset"
    shutil.copytree(demo_build[0].out_dir, dataset)
    fit_units(dataset, k=32, seed=0)
    run_extract(ExtractConfig(dataset_dir=dataset, feature_sets=DEMO_SETS, progress=False))
    return dataset


@pytest.fixture
def demo_copy(demo_features, tmp_path) -> Path:
    """A fresh copy of the demo dataset with its offline sets, for a test that changes it."""
    dataset = tmp_path / "dataset"
    shutil.copytree(demo_features, dataset)
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
