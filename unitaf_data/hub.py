"""Inputs that are either a local path or a Hugging Face Hub repository id (dataset or model)."""

from __future__ import annotations

import re
from pathlib import Path

_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


def is_hub_id(reference: str) -> bool:
    """`owner/name`: the shape of a Hugging Face Hub repository id."""
    return bool(_HUB_ID.fullmatch(reference)) and ".." not in reference


def local_or_hub(reference: str, allow_patterns: list[str] | None = None, hint: str = "",
                 repo_type: str = "dataset") -> Path:
    """`reference` as a local path when it exists; otherwise a Hub repository id fetched with
    `huggingface_hub.snapshot_download` (only `allow_patterns` when given; from the local
    cache when offline). Offline without a cached copy, or for an unknown or gated
    repository, a FileNotFoundError says so (`hint`: what to do)."""
    path = Path(reference)
    if path.exists():
        return path
    if not is_hub_id(reference):
        raise FileNotFoundError(f"{reference} is neither a local path nor a Hub {repo_type} id"
                                f"{hint}")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(reference, repo_type=repo_type,
                                      allow_patterns=allow_patterns))
    except Exception as error:  # offline, unknown repository, gated access...
        raise FileNotFoundError(f"could not download {reference} from the Hugging Face Hub "
                                f"({type(error).__name__}: {error}){hint}") from error
