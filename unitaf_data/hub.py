"""Inputs that are either a local folder or a Hugging Face Hub dataset id."""

from __future__ import annotations

import re
from pathlib import Path

_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


def local_or_hub(reference: str, allow_patterns: list[str] | None = None, hint: str = ""
                 ) -> Path:
    """`reference` as a local path when it exists; otherwise a Hub dataset id fetched with
    `huggingface_hub.snapshot_download` (only `allow_patterns` when given). Offline, or for
    an unknown or gated repository, a FileNotFoundError says so (`hint`: what to do)."""
    path = Path(reference)
    if path.exists():
        return path
    if not _HUB_ID.fullmatch(reference):
        raise FileNotFoundError(f"{reference} is neither a folder nor a Hub dataset id")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(reference, repo_type="dataset",
                                      allow_patterns=allow_patterns))
    except Exception as error:  # offline, unknown repository, gated access...
        raise FileNotFoundError(f"could not download {reference} from the Hugging Face Hub "
                                f"({type(error).__name__}: {error}){hint}") from error
