"""Runs on the Hugging Face Hub: downloading a run (model repo) to load it read-only."""

from __future__ import annotations

from pathlib import Path

RUN_FILES = ["model.json", "config.json", "rig.npz", "front_end.safetensors",
             "best/*", "validation.jsonl", "eval/*"]


def download_run(repo_id: str, revision: str | None = None) -> Path:
    """The files of a run pushed with `unitaf push-run` (weights as safetensors, records as
    JSON; nothing executable), from the Hub or the local cache."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, repo_type="model", revision=revision,
                                      allow_patterns=RUN_FILES))
    except Exception as error:  # offline, unknown repository, gated access...
        raise FileNotFoundError(f"could not download the run {repo_id} from the Hugging Face "
                                f"Hub ({type(error).__name__}: {error})") from error
