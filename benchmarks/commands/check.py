"""`nfbench check`: a small deterministic run compared with the committed baseline.

The `check` preset (every native model, 2 synthetic tasks, short schedules) runs in a temporary
results folder.
Each summary figure (ACC, FM, BWT of image AUROC, pixel AUROC and AUPRO) and each R entry must
lie within TOLERANCE of reports/baselines/check.json. The tolerance is absolute, in AUROC units:
the same machine reproduces the run bit for bit (seeded, fixed epochs), but BLAS kernels differ
across CPUs, which moves AUROC by a few thousandths; a real regression moves it by more.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path

from nfbench.benchmarks.commands.grids import load_grid
from nfbench.benchmarks.measuring.metrics import summarised_keys
from nfbench.benchmarks.records.record import CellRecord, write_json_atomic
from nfbench.benchmarks.running.runner import RunRequest, run_grid

TOLERANCE = 0.02


def _figures(record: CellRecord) -> dict[str, float | None]:
    """The flat dict of figures a baseline pins for one cell: every summarised metric's
    ACC/FM/BWT and R entries."""
    figures: dict[str, float | None] = {}
    for metric in summarised_keys():
        for key, value in record.summary.get(metric, {}).items():
            figures[f"{metric}.{key}"] = value
        for t, row in enumerate(record.R.get(metric, [])):
            for k, value in enumerate(row):
                figures[f"{metric}.R[{t + 1},{k + 1}]"] = value
    return figures


def current_figures(cache_dir: Path = Path(".cache/nfbench")) -> dict[str, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        request = RunRequest(**{**load_grid("check"), "results_dir": Path(tmp),
                                "cache_dir": cache_dir})
        records = run_grid(request, show_progress=False)
    out = {}
    for r in records:
        if r.status == "skipped":
            continue
        if not r.ok:
            raise RuntimeError(f"check cell {r.variant}/{r.strategy} failed: {r.error}")
        out[f"{r.variant}/{r.strategy}/s{r.seed}"] = _figures(r)
    return out


def compare(baseline: dict[str, dict], current: dict[str, dict], tol: float) -> list[str]:
    """Human-readable failures, each naming the model and the metric."""
    problems = []
    for cell, figures in baseline.items():
        if cell not in current:
            problems.append(f"{cell}: missing from the current run")
            continue
        for name, expected in figures.items():
            got = current[cell].get(name)
            if expected is None and got is None:
                continue
            if expected is None or got is None or not math.isclose(got, expected, abs_tol=tol):
                problems.append(f"{cell}: {name} = {got} (baseline {expected}, tolerance {tol})")
    return problems


def run_check(baseline_path: Path, update: bool = False) -> int:
    if not update and not baseline_path.exists():
        raise FileNotFoundError(f"no baseline at {baseline_path} (create it with --update)")
    current = current_figures()
    if update:
        write_json_atomic(baseline_path, {"tolerance": TOLERANCE, "cells": current})
        print(f"baseline written: {baseline_path}")
        return 0
    baseline = json.loads(baseline_path.read_text())
    problems = compare(baseline["cells"], current, baseline.get("tolerance", TOLERANCE))
    for line in problems:
        print(f"check FAILED {line}", file=sys.stderr)
    if not problems:
        n = sum(len(v) for v in baseline["cells"].values())
        print(f"check passed: {n} figures within {baseline.get('tolerance', TOLERANCE)}")
    return 1 if problems else 0
