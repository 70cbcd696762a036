"""Shared fixtures: one ~1-minute demo dataset built through Ray, and one copy of it with the
offline feature sets, reused by every test that needs them. Tests keep their Hugging Face
caches in a temporary folder."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import psutil
import pytest

# Before any Hugging Face import: tests never write into the user's ~/.cache/huggingface.
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="unitaf-tests-hf-")

from reference import DEMO_SETS

PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h
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


def _adopt_orphans() -> None:
    """Make this process the Linux child subreaper of everything the tests start: a process
    left behind by a killed run (a Ray worker whose driver got SIGKILL) stays our descendant
    instead of moving to init, so the end of the session can still stop it by its pid."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


_adopt_orphans()
SHUTDOWN_GRACE_S = 10


@pytest.fixture(scope="session", autouse=True)
def _stop_what_the_tests_started():
    """At the end of the session: Ray shut down, then every process the tests started and
    left running killed by its pid and named in a warning, so nothing outlives the run
    holding its output open."""
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()
    _, alive = psutil.wait_procs(psutil.Process().children(recursive=True),
                                 timeout=SHUTDOWN_GRACE_S)  # Ray's own exit, unhurried
    leftovers = [process for process in alive if not _ends_with_us(process)]
    names = sorted({_name(process) for process in leftovers})
    for process in leftovers:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(leftovers, timeout=30)
    if leftovers:
        warnings.warn(f"killed {len(leftovers)} process(es) the tests left running: {names}",
                      stacklevel=1)


def _ends_with_us(process) -> bool:
    """multiprocessing's resource tracker of this very process: it exits when we do."""
    try:
        return "multiprocessing.resource_tracker" in " ".join(process.cmdline())
    except psutil.Error:
        return True


def _name(process) -> str:
    try:
        return " ".join(process.cmdline())[:120] or process.name()
    except psutil.Error:  # it already ended: its pid is all that is left
        return str(process.pid)
