"""The notebooks run top to bottom on a demo dataset and run, in a Jupyter kernel (nbclient),
with the first cell's paths pointed at the test's data."""

from __future__ import annotations

from pathlib import Path

import pytest

from unitaf_data.testing import write_dummy_dataset
from unitaf_model.training.config import load_config
from unitaf_model.training.launcher import train

pytestmark = pytest.mark.e2e

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
STEPS = ["augment_share=0",
         "steps=3", "val_every=3", "checkpoint_every=3", "batch_size=2", "warmup_steps=1"]


def _run(notebook: str, parameters: str, folder: Path):
    """The notebook executed in a fresh kernel in `folder`, its first code cell replaced."""
    import nbformat
    from nbclient import NotebookClient

    book = nbformat.read(NOTEBOOKS / notebook, as_version=4)
    next(c for c in book.cells if c.cell_type == "code").source = parameters
    NotebookClient(book, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}).execute()
    return book


def _outputs(book) -> str:
    return "".join(str(o.get("text", o.get("data", ""))) for c in book.cells
                   if c.cell_type == "code" for o in c.outputs)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("notebooks")
    dataset = write_dummy_dataset(root / "dataset")
    train(load_config(CONFIGS / "demo_stage1.yaml", STEPS, data=str(dataset),
                      out=str(root / "stage1")))
    train(load_config(CONFIGS / "demo_stage2.yaml", STEPS, data=str(dataset),
                      out=str(root / "stage2"), init=str(root / "stage1")))
    return dataset, root / "stage2"


def test_the_evaluate_run_notebook_runs_top_to_bottom(demo_run, tmp_path):
    book = _run("evaluate_run.ipynb", f"from pathlib import Path\nRUN = Path({str(demo_run[1])!r})"
                "\nSPLIT = 'test'", tmp_path)
    shown = _outputs(book)
    assert "| lve |" in shown and "image/png" in shown and "bilabial intervals" in shown


def test_the_dataset_notebooks_run_top_to_bottom(demo_run, tmp_path):
    dataset = demo_run[0]
    shown = _outputs(_run("inspect_dataset.ipynb",
                          f"from pathlib import Path\nDATASET = Path({str(dataset)!r})", tmp_path))
    assert "phones_source" in shown and (tmp_path / "clip.png").exists()
    shown = _outputs(_run("mouth_openness_interval.ipynb", f"from pathlib import Path\nDATASET = "
                          f"Path({str(dataset)!r})\nRIG = 'demo'", tmp_path))
    assert "holds" in shown and "image/png" in shown
