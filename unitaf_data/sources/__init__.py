"""Corpus sources: one module per corpus, each exposing the same plain functions.

`discover(input_dir) -> list[RecordingRef]` (sorted, labels from path parts) and
`load(ref) -> Recording` (16 kHz mono audio, face track with its channel names and fps).
"""

from __future__ import annotations

import importlib
from types import ModuleType

SOURCE_NAMES = ("demo",)


def get_source(name: str) -> ModuleType:
    if name not in SOURCE_NAMES:
        raise ValueError(f"unknown source {name!r}; choose one of: {', '.join(SOURCE_NAMES)}")
    return importlib.import_module(f"unitaf_data.sources.{name}")
