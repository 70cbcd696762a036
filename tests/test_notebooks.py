"""The notebooks run top to bottom on a demo dataset and run (their code cells executed in
order, the first cell's paths pointed at the test's data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unitaf_data.testing import write_dummy_dataset
from unitaf_model.config import load_config
from unitaf_model.distributed import train

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
STEPS = ["steps=3", "val_every=3", "checkpoint_every=3", "batch_size=2", "warmup_steps=1"]


def _run(notebook: str, parameters: str) -> dict:
    """Execute the code cells of `notebook` in one namespace, the first replaced."""
    cells = [c for c in json.loads((NOTEBOOKS / notebook).read_text())["cells"]
             if c["cell_type"] == "code"]
    namespace: dict = {"display": lambda *objects: None}
    for index, cell in enumerate(cells):
        source = parameters if index == 0 else "".join(cell["source"])
        exec(compile(source, f"{notebook}[{index}]", "exec"), namespace)  # noqa: S102
    return namespace


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("notebooks")
    dataset = write_dummy_dataset(root / "dataset")
    train(load_config(CONFIGS / "demo_stage1.yaml", STEPS, data=str(dataset),
                      out=str(root / "stage1")))
    train(load_config(CONFIGS / "demo_stage2.yaml", STEPS, data=str(dataset),
                      out=str(root / "stage2"), init=str(root / "stage1")))
    return dataset, root / "stage2"


def test_the_evaluate_run_notebook_runs_top_to_bottom(demo_run, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    done = _run("evaluate_run.ipynb", f"from pathlib import Path\nRUN = Path({str(demo_run[1])!r})"
                "\nSPLIT = 'test'")
    assert done["evaluation"].scores and done["rows"]


def test_the_dataset_notebooks_run_top_to_bottom(demo_run, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    dataset = demo_run[0]
    _run("inspect_dataset.ipynb", f"from pathlib import Path\nDATASET = Path({str(dataset)!r})")
    done = _run("mouth_openness_interval.ipynb",
                f"from pathlib import Path\nDATASET = Path({str(dataset)!r})\nRIG = 'demo'")
    assert done["fitted"].low < done["fitted"].high
