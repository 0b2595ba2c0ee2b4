"""Package discovery for the `nfbench` namespace (the metadata lives in pyproject.toml).

models/, datasets/ and benchmarks/ become nfbench.models, nfbench.datasets and
nfbench.benchmarks with every sub-folder that holds Python code or presets, so a new model
folder is packaged without editing any list.
"""

from pathlib import Path

from setuptools import setup

ROOTS = ("models", "datasets", "benchmarks")


def packages() -> dict[str, str]:
    """nfbench.<dotted path> -> folder, for each root and each sub-folder with code or data."""
    found = {}
    for root in ROOTS:
        for folder in [Path(root), *sorted(p for p in Path(root).rglob("*") if p.is_dir())]:
            if "__pycache__" in folder.parts:
                continue
            if any(folder.glob("*.py")) or any(folder.glob("*.toml")):
                found["nfbench." + ".".join(folder.parts)] = str(folder)
    return found


setup(packages=list(packages()), package_dir=packages())
