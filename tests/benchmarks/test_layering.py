"""The house rules: generic code names no model; each folder imports only what it may."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODEL_NAMES = re.compile(r"uflow|hgad|ccnf|cflow|csflow|fastflow|msflow|patchcore", re.I)


def test_benchmarks_name_no_model():
    """Adding a model touches only its folder: benchmarks/ knows models through the registry
    and their declared capabilities, never by name (presets and READMEs are data, not code)."""
    offenders = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
                 for path in sorted((ROOT / "benchmarks").rglob("*.py"))
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if MODEL_NAMES.search(line)]
    assert offenders == []


def test_lower_layers_never_import_higher_ones():
    """datasets <- models <- benchmarks: data readers know no model, models no harness."""
    rules = {"datasets": ("nfbench.models", "nfbench.benchmarks"),
             "models": ("nfbench.benchmarks",)}
    offenders = [str(path.relative_to(ROOT)) for folder, banned in rules.items()
                 for path in (ROOT / folder).rglob("*.py")
                 if any(f"import {b}" in text or f"from {b}" in text
                        for b in banned for text in [path.read_text()])]
    assert offenders == []
