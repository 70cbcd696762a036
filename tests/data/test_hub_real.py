"""Push and pull against the real Hugging Face Hub: only where a token and the network
exist (skipped otherwise, with the reason printed). A private repository is created under
the token's user and deleted afterwards; the cache is kept in the test's folder."""

from __future__ import annotations

import os
import shutil
import socket

import pytest

from unitaf_data.dataset import Dataset
from unitaf_data.hub import dataset_files, pull_dataset, push_dataset

pytest.importorskip("espeakng_loader")
pytestmark = pytest.mark.e2e


def _why_not() -> str | None:
    from huggingface_hub import get_token

    if get_token() is None:
        return "no Hugging Face token (HF_TOKEN or `hf auth login`)"
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
    except OSError as error:
        return f"huggingface.co unreachable ({error})"
    return None


def test_a_demo_dataset_pushes_and_pulls_back_byte_for_byte(request, tmp_path, monkeypatch):
    reason = _why_not()
    if reason:
        print(f"skipped: {reason}")
        pytest.skip(reason)
    import huggingface_hub.constants
    from huggingface_hub import HfApi

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "dataset"  # built only once the test can run
    shutil.copytree(request.getfixturevalue("demo_build")[0].out_dir, source)
    repo = f"{HfApi().whoami()['name']}/unitaf-test-{os.getpid()}"
    try:
        pushed = push_dataset(source, repo)  # private: the default
        pulled = pull_dataset(repo, tmp_path / "copy", revision=pushed.commit)
        assert pulled.commit == pushed.commit
        for path in dataset_files(Dataset.open_folder(source), []):
            assert (tmp_path / "copy" / path).read_bytes() == (source / path).read_bytes()
    finally:
        HfApi().delete_repo(repo, repo_type="dataset", missing_ok=True)
