"""Shared fixtures: one ~1-minute demo dataset built through Ray, reused by the e2e tests."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory):
    """(config, summary) of a 1-minute demo build on local Ray."""
    from unitaf_pipelines.build import BuildConfig, run_build

    config = BuildConfig(source="demo", out_dir=tmp_path_factory.mktemp("demo") / "dataset",
                         demo_minutes=1.0, seed=3, progress=False)
    return config, run_build(config)


@pytest.fixture(scope="session", autouse=True)
def _shutdown_ray():
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()
