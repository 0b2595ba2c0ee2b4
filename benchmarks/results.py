"""Result records: one schema-versioned JSON per cell, written atomically, plus scores.

A cell is (model variant x scenario x strategy x seed x settings). Its id carries a digest of
every setting that shapes the numbers, so a re-run skips exactly the finished cells and a
changed setting gets a new cell instead of a stale one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from nfbench.datasets.files import atomic_write

SCHEMA_VERSION = 1


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=_-]+", "-", text).strip("-")


def cell_id(variant: str, scenario: str, strategy: str, seed: int, settings: dict) -> str:
    blob = json.dumps({"schema": SCHEMA_VERSION, **settings}, sort_keys=True, default=str)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:8]
    return f"{_slug(variant)}__{_slug(scenario)}__{strategy}__s{seed}__{digest}"


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become null, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json_atomic(path: Path, record: dict) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(_clean(record), f, indent=1, allow_nan=False)

    atomic_write(path, write)


def write_scores(results_dir: Path, cid: str, table: pd.DataFrame, arrays: dict) -> dict:
    """Per-sample scores (CSV) and maps/masks (npz); returns their paths relative to results."""
    csv_rel, npz_rel = Path("scores") / f"{cid}.csv", Path("scores") / f"{cid}.npz"
    atomic_write(results_dir / csv_rel, lambda tmp: table.to_csv(tmp, index=False))

    def write_npz(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)

    atomic_write(results_dir / npz_rel, write_npz)
    return {"csv": str(csv_rel), "maps": str(npz_rel)}


def cell_path(results_dir: Path, cid: str) -> Path:
    return results_dir / "cells" / f"{cid}.json"


def read_record(path: Path) -> dict | None:
    """A cell's record, or None when absent, unreadable or of another schema version."""
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
    return record if record.get("schema_version") == SCHEMA_VERSION else None


def load_records(results_dir: Path) -> list[dict]:
    paths = sorted((results_dir / "cells").glob("*.json"))
    return [r for r in map(read_record, paths) if r is not None]


def environment(device: torch.device) -> dict:
    try:
        version = metadata.version("nfbench")
    except metadata.PackageNotFoundError:
        version = "unknown"
    env = {
        "nfbench": version,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device.type,
    }
    if device.type == "cuda":
        env["device_name"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    return env
