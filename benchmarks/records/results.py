"""Where a cell's results go besides its record (record.py): its id, its per-sample scores,
and the environment it ran in.

A cell is (model variant x scenario x strategy x seed x settings). Its id carries a digest of
every setting that shapes the numbers, so a re-run skips exactly the finished cells and a
changed setting gets a new cell instead of a stale one.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nfbench.datasets.files import atomic_write


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=_-]+", "-", text).strip("-")


# what a cell id hashes besides its settings: bumped when what identifies a cell changes, not
# with the record's schema (schema 3 added routing figures; the cells are the same cells)
CELL_ID_SCHEMA = 2
MAX_VARIANT_CHARS = 120  # file names stay under the usual 255-byte limit (paper presets)


def cell_id(variant: str, scenario: str, strategy: str, seed: int, settings: dict) -> str:
    blob = json.dumps({"schema": CELL_ID_SCHEMA, **settings}, sort_keys=True, default=str)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:8]
    name = _slug(variant)
    if len(name) > MAX_VARIANT_CHARS:  # many overrides: cut; the digest still covers them all
        name = name[: MAX_VARIANT_CHARS - 2].rstrip("-") + "--"
    return f"{name}__{_slug(scenario)}__{strategy}__s{seed}__{digest}"


def write_scores(results_dir: Path, cid: str, table: pd.DataFrame, arrays: dict) -> dict:
    """Per-sample scores (CSV) and maps/masks (npz); returns their paths relative to results."""
    csv_rel, npz_rel = Path("scores") / f"{cid}.csv", Path("scores") / f"{cid}.npz"
    atomic_write(results_dir / csv_rel, lambda tmp: table.to_csv(tmp, index=False))

    def write_npz(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)

    atomic_write(results_dir / npz_rel, write_npz)
    return {"csv": str(csv_rel), "maps": str(npz_rel)}


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
