"""Package discovery that cannot miss a subpackage (everything else is in pyproject.toml):
every package under `unitaf_data/` and `unitaf_model/`, and the folders `cli/` and
`pipelines/` (with any subpackages) under unitaf-specific import names, so that no generic
top-level name (`cli`, `pipelines`) is installed."""

from setuptools import find_packages, setup

MAPPED = {"unitaf_cli": "cli", "unitaf_pipelines": "pipelines"}

packages = find_packages(include=["unitaf_data", "unitaf_data.*", "unitaf_model",
                                  "unitaf_model.*"])
for name, folder in MAPPED.items():
    packages += [name, *(f"{name}.{sub}" for sub in find_packages(folder))]

setup(packages=packages, package_dir=MAPPED)
