"""`bench/demo_results.py` without training: it runs README command (1)'s own steps, and
writes mean ± std tables into README's marked block and nowhere else. (The script itself
trains three stages per seed: `--quick` takes minutes, too slow for the test suite.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import demo_results  # noqa: E402


def test_the_steps_are_readme_command_one_on_the_scripts_folders():
    steps = demo_results.readme_command(ROOT / "README.md")
    build, extract, *trainings = [demo_results._substitute(s, Path("/d"), Path("/r/seed1"), 3)
                                  for s in steps]
    assert build[:2] == ["unitaf-data", "build"] and build[build.index("--out") + 1] == "/d"
    assert build[build.index("--demo-minutes") + 1] == "3"
    assert extract[:3] == ["unitaf-data", "extract-features", "/d"]
    assert [t[t.index("--out") + 1] for t in trainings] == [
        "/r/seed1/stage1", "/r/seed1/stage2", "/r/seed1/stage3"]
    assert trainings[2][trainings[2].index("--init") + 1] == "/r/seed1/stage2"
    assert all(Path(t[t.index("--config") + 1]).is_file() for t in trainings)


def test_a_readme_without_the_command_is_refused(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# nothing to run\n")
    with pytest.raises(SystemExit, match="no README command"):
        demo_results.readme_command(readme)


def _seed(lve: float, bcs: float) -> dict:
    return {"test": {"stage3": {"lve_vs_mean_face": lve, "bcs": bcs},
                     "ground truth": {"bcs": 0.95}}}


def test_tables_give_mean_and_sample_std_over_seeds():
    table = demo_results.split_table([_seed(0.2, 0.9), _seed(0.4, 0.8)], "test")
    rows = {line.split("`")[1]: line for line in table.splitlines() if "`" in line}
    assert "| 0.3 ± 0.14 |" in rows["lve_vs_mean_face"]  # std with ddof 1: 0.1414
    assert "| 0.85 ± 0.071 |" in rows["bcs"] and "| 0.95 ± 0 |" in rows["bcs"]
    assert "mouth_l2" not in rows  # a metric no system has is left out
    assert demo_results.spread([None, float("nan")]) == "–"


def test_only_the_marked_block_of_the_readme_is_replaced(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{demo_results.BEGIN}\nold\n{demo_results.END}\nafter\n")
    demo_results.write_readme(readme, "new table")
    assert readme.read_text() == (f"before\n{demo_results.BEGIN}\nnew table\n"
                                  f"{demo_results.END}\nafter\n")
    unmarked = tmp_path / "OTHER.md"
    unmarked.write_text("no block\n")
    with pytest.raises(SystemExit, match="no <!-- results:begin -->"):
        demo_results.write_readme(unmarked, "x")
    assert unmarked.read_text() == "no block\n"
