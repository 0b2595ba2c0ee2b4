"""The house rules: import-linter's contracts (.importlinter) hold, and they are live.

import-linter (through grimp) reads packages that have `__init__.py` files; the top-level
folders deliberately have none (running Python from the repository root must never shadow a
well-known distribution such as HuggingFace `datasets`). So the check runs on a copy of the
three folders laid out as the `nfbench` package with those files added.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _package_copy(dest: Path) -> Path:
    package = dest / "nfbench"
    for folder in ("models", "datasets", "benchmarks"):
        shutil.copytree(ROOT / folder, package / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.toml", "*.md"))
    for directory in [package, *(p for p in package.rglob("*") if p.is_dir())]:
        (directory / "__init__.py").touch(exist_ok=True)
    return package


def _lint(copy_root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(copy_root)}
    return subprocess.run([str(LINT_IMPORTS), str(ROOT / ".importlinter"),
                           "--no-cache"], cwd=copy_root, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def copy_root(tmp_path_factory) -> Path:
    if not LINT_IMPORTS.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    root = tmp_path_factory.mktemp("lint")
    _package_copy(root)
    return root


def test_import_contracts_hold(copy_root):
    result = _lint(copy_root)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("benchmarks/records/results.py",
     "from nfbench.benchmarks.running import runner  # noqa", "measuring over records"),
    ("benchmarks/running/cell.py",
     "from nfbench.benchmarks.running import executors  # noqa", "the runner over executors"),
    ("models/base.py", "import nfbench.benchmarks.records.record  # noqa", "data readers"),
])
def test_a_back_arrow_breaks_a_contract(copy_root, tmp_path, module, line, contract):
    broken = tmp_path / "broken"
    shutil.copytree(copy_root, broken)
    path = broken / "nfbench" / module
    path.write_text(path.read_text() + f"\n{line}\n")
    result = _lint(broken)
    assert result.returncode != 0 and "BROKEN" in result.stdout
    assert contract in result.stdout
