"""Every module is named in its folder's README, so the map never misses a room."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = sorted({p.parent for top in ("benchmarks", "datasets", "models")
                  for p in (ROOT / top).rglob("*.py") if "__pycache__" not in p.parts})


def _readme(folder: Path) -> Path:
    """The folder's README, or its nearest ancestor's (a small sub-package may share it)."""
    for candidate in (folder, *folder.parents):
        if (candidate / "README.md").is_file():
            return candidate / "README.md"
    raise AssertionError(f"no README for {folder}")


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda f: str(f.relative_to(ROOT)))
def test_every_module_is_named_in_its_readme(folder: Path):
    readme = _readme(folder)
    text = readme.read_text()
    missing = [p.name for p in sorted(folder.glob("*.py"))
               if p.name != "__init__.py" and p.stem not in text]
    assert missing == [], f"{readme.relative_to(ROOT)} does not name {missing}"
