"""The report's I/O: per-sample scores (CSV), maps (NPZ) and images in; CSVs, figures and
markdown out. Everything else in the package works on what these functions return."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from nfbench.benchmarks.measuring import statistics as st  # noqa: E402
from nfbench.benchmarks.records.record import CellRecord  # noqa: E402
from nfbench.benchmarks.report import data  # noqa: E402
from nfbench.benchmarks.report.data import MapColumn, MapRow  # noqa: E402

__all__ = ["anomaly_panel", "clear_plots", "read_cell_scores",
           "read_score_rows", "save_figure", "slug", "write_csv", "write_text"]

DPI = 110
SCORE_COLUMNS = {"after_task", "task", "class_name", "path", "label", "row"}


# ---------------------------------------------------------------- reading


def read_cell_scores(records: Sequence[CellRecord], results_dir: Path
                     ) -> dict[str, st.CellScores]:
    """Per-sample scores of every ok record that has readable ones, by cell id."""
    scores = {}
    for rec in records:
        cell = st.load_cell_scores(Path(results_dir), rec) if rec.ok else None
        if cell is not None:
            scores[rec.cell_id] = cell
    return scores


def read_score_rows(results_dir: Path, rec: CellRecord) -> pd.DataFrame | None:
    """A cell's per-sample scores CSV, or None when missing, unreadable or malformed."""
    if not (rec.scores or {}).get("csv"):
        return None
    try:
        rows = pd.read_csv(Path(results_dir) / rec.scores["csv"])
    except (OSError, ValueError):
        return None
    return rows if not rows.empty and SCORE_COLUMNS <= set(rows.columns) else None


def read_image(path: str, results_dir: Path, size: tuple[int, ...] | None) -> np.ndarray | None:
    """RGB image from a scores-CSV path (absolute, or relative to results_dir / cwd), resized
    to ``size`` (H, W) when given."""
    from PIL import Image

    for cand in (Path(path), Path(results_dir) / path):
        if cand.is_file():
            try:
                img = Image.open(cand).convert("RGB")
            except OSError:
                return None
            return np.asarray(img.resize((size[1], size[0])) if size else img)
    return None


def _read_final_maps(results_dir: Path, rec: CellRecord, last: int
                     ) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(maps of the final evaluation, masks or None) from a cell's NPZ, or None."""
    try:
        with np.load(Path(results_dir) / rec.scores.get("maps", "")) as z:
            keys = sorted((k for k in z.files if k.startswith("maps_t")), key=lambda k: int(k[6:]))
            key = f"maps_t{last}" if f"maps_t{last}" in keys else keys[-1]
            return z[key], (z["masks"] if "masks" in z.files else None)
    except (OSError, ValueError, KeyError, IndexError):
        return None


def _map_column(rec: CellRecord, rows: pd.DataFrame, samples: pd.DataFrame, results_dir: Path
                ) -> tuple[MapColumn, list[np.ndarray | None]] | None:
    """One cell's column of the figure (and its stored masks of the samples), or None."""
    final = data.final_rows(rows)
    by_path = dict(zip(final["path"], final["row"].astype(int), strict=True))
    need = [by_path.get(p) for p in samples["path"]]
    read = _read_final_maps(results_dir, rec, int(final["after_task"].iloc[0]))
    if read is None:
        return None
    maps, masks = read
    lo, hi = data.color_range(maps)
    column = MapColumn(f"{rec.variant}\n({rec.strategy})",
                       [None if r is None else maps[r].astype(np.float32) for r in need], lo, hi)
    return column, [None if r is None or masks is None else masks[r].astype(bool) for r in need]


def _columns(records: Sequence[CellRecord], results_dir: Path, n: int
             ) -> tuple[pd.DataFrame | None, list[MapColumn], list[list], list[str]]:
    """(samples, columns, their masks, variants without maps) of the anomaly-map figure."""
    samples, cols, masks, missing = None, [], [], []
    for variant, rec in data.map_cells(records).items():
        rows = read_score_rows(results_dir, rec)
        if rows is not None and samples is None:
            picked = data.pick_samples(rows, n)
            samples = picked if len(picked) else None
        col = _map_column(rec, rows, samples, results_dir) if rows is not None and \
            samples is not None else None
        if col is None:
            missing.append(variant)
        else:
            cols.append(col[0])
            masks.append(col[1])
    return samples, cols, masks, missing


def _sample_row(sample: pd.Series, i: int, cols: list[MapColumn], masks: list[list],
                results_dir: Path) -> MapRow:
    mask = next((m[i] for m in masks if m[i] is not None), None)
    hw = next((c.maps[i].shape for c in cols if c.maps[i] is not None), None)
    flag = sample.get("has_mask")  # older CSVs without the column: trust the stored mask
    has = bool(flag) if flag is not None else mask is not None and bool(mask.any())
    return MapRow(f"{sample['class_name']}\n{Path(str(sample['path'])).name}",
                  read_image(str(sample["path"]), results_dir, hw), mask if has else None)


def anomaly_panel(records: Sequence[CellRecord], results_dir: Path, n: int = 4
                  ) -> tuple[list[MapRow], list[MapColumn], str | None]:
    """The anomaly-map figure's rows (the same anomalous test images) and columns (one cell
    per variant), plus a note on what could not be read; no columns when nothing could."""
    samples, cols, masks, missing = _columns(records, results_dir, n)
    if not cols:
        note = ("anomaly-map figure skipped: no readable scores CSV + maps npz with anomalous "
                "samples" + (f" (missing for {', '.join(missing)})" if missing else ""))
        return [], [], note
    rows = [_sample_row(s, i, cols, masks, results_dir)
            for i, (_, s) in enumerate(samples.iterrows())]
    notes = ["some input images could not be read"] if any(r.image is None for r in rows) else []
    notes += [f"no maps for {', '.join(missing)}"] if missing else []
    return rows, cols, (f"anomaly-map figure: {'; '.join(notes)}" if notes else None)


# ---------------------------------------------------------------- writing


def slug(text: str) -> str:
    """File-name-safe form of a scenario name."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-") or "scenario"


def save_figure(fig: Figure, path: Path) -> Path:
    """Save and close a figure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def clear_plots(plot_dir: Path, prefixes: tuple[str, ...]) -> None:
    """Remove an earlier report's plots (those whose names start with ``prefixes``)."""
    for old in plot_dir.glob("*.png"):
        if old.name.startswith(prefixes):
            old.unlink()


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def write_text(text: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
