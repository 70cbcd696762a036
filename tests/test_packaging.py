"""The wheel holds every module of the source tree, and its console scripts import from it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"unitaf_data": "unitaf_data", "unitaf_model": "unitaf_model", "cli": "unitaf_cli",
           "pipelines": "unitaf_pipelines"}


def test_the_wheel_has_every_module_and_its_console_scripts_import(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path / "wheel"), str(ROOT)],
                   check=True, capture_output=True)
    wheel = next((tmp_path / "wheel").glob("unitaf-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"{package}/{path.relative_to(ROOT / folder).as_posix()}"
                for folder, package in FOLDERS.items()
                for path in (ROOT / folder).rglob("*.py") if "__pycache__" not in path.parts}
    assert expected - names == set()
    assert not any(name.split("/")[0] in ("cli", "pipelines", "tests") for name in names)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(tmp_path / "site"), str(wheel)], check=True, capture_output=True)
    probe = ("import unitaf_cli.data_app, unitaf_cli.main_app, unitaf_data.features.offline, "
             "unitaf_pipelines.extract; print(unitaf_cli.data_app.__file__)")
    found = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True,
                           text=True, env={"PYTHONPATH": str(tmp_path / "site"),
                                           "PATH": "/usr/bin:/bin"})
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip().startswith(str(tmp_path / "site"))
    command = ("import sys; sys.argv = ['unitaf-data', 'extract-features', '--help']; "
               "from unitaf_cli.data_app import app; app()")
    helped = subprocess.run([sys.executable, "-c", command], cwd=tmp_path, capture_output=True,
                            text=True, env={"PYTHONPATH": str(tmp_path / "site"),
                                            "PATH": "/usr/bin:/bin"})
    assert helped.returncode == 0 and "feature" in helped.stdout, helped.stderr
