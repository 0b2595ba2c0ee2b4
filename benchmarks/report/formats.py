"""How the report writes numbers: a mean with its intervals, a difference, a count, a
p-value, a GitHub-markdown table. The leaderboard (markdown.py), its other tables (tables.py)
and compare.md (compare_text.py) share them, so a figure reads the same everywhere.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nfbench.benchmarks.report import data

__all__ = ["NA", "cell_value", "fmt_ci", "fmt_count", "fmt_p", "fmt_pm", "fmt_row_ci",
           "has_interval", "table"]

NA = "n/a"

def _decimals(x: float) -> int:
    """Decimals for a cost figure: 0 from 100 up, 1 from 10 up, else 2."""
    return 0 if abs(x) >= 100 else 1 if abs(x) >= 10 else 2


def fmt_pm(mean: float, std: float = float("nan"), scale: float = 100.0,
           decimals: int | None = 1) -> str:
    """"93.1 ± 0.4" (mean, std times ``scale``); std omitted when NaN; "n/a" when mean is NaN.

    ``decimals=None`` picks 0/1/2 decimals from the magnitude (cost figures).
    """
    if mean is None or not np.isfinite(mean):
        return NA
    m = mean * scale
    d = _decimals(m) if decimals is None else decimals
    text = f"{m:.{d}f}"
    if std is not None and np.isfinite(std):
        text += f" ± {std * scale:.{d}f}"
    return text


def has_interval(lo: float | None, hi: float | None) -> bool:
    return lo is not None and hi is not None and bool(np.isfinite(lo) and np.isfinite(hi))


def fmt_ci(mean: float, seed: tuple[float, float] = (np.nan, np.nan),
           boot: tuple[float, float] = (np.nan, np.nan), scale: float = 100.0,
           decimals: int | None = 1, bounds: tuple[float, float] = (-np.inf, np.inf)) -> str:
    """"81.3 [78.0, 84.5] s[76.0, 86.6]": mean, bootstrap interval over test images, interval
    across seeds (each interval omitted where undefined); "n/a" when the mean is NaN.

    The seed interval is clipped to ``bounds`` (a t-interval over 2 seeds can pass 100 points
    of AUROC). ``decimals=None`` picks 0/1/2 decimals from the magnitude (cost figures).
    """
    if mean is None or not np.isfinite(mean):
        return NA
    m = mean * scale
    d = _decimals(m) if decimals is None else decimals
    text = f"{m:.{d}f}"
    seed = tuple(np.clip(np.asarray(seed, dtype=float), *bounds))
    for prefix, (lo, hi) in (("", boot), ("s", seed)):
        if has_interval(lo, hi):
            text += f" {prefix}[{lo * scale:.{d}f}, {hi * scale:.{d}f}]"
    return text


def fmt_count(x: float) -> str:
    """Parameter count as 1.23M / 45.6k / 789."""
    if not np.isfinite(x):
        return NA
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.1f}k" if x >= 1e3 else f"{x:.0f}"


def cell_value(r: pd.Series, col: str) -> float:
    value = r.get(col, np.nan)
    return float("nan") if value is None else float(value)


def fmt_row_ci(r: pd.Series, col: str, scale: float = 100.0, decimals: int | None = 1) -> str:
    """Formatted mean with its bootstrap and seed intervals of aggregated column ``col``."""
    seed = (cell_value(r, f"{col}__lo"), cell_value(r, f"{col}__hi"))
    if data.bounds(col)[1] == np.inf and seed[0] == seed[1]:  # a cost measured once per variant
        seed = (np.nan, np.nan)
    boot = (cell_value(r, f"{col}__blo"), cell_value(r, f"{col}__bhi"))
    return fmt_ci(cell_value(r, f"{col}__mean"), seed, boot, scale, decimals, data.bounds(col))


def fmt_p(p: float) -> str:
    """A p-value as "p=0.12", "p=0.003", or "p<0.001" (never a rounded "p=0.00")."""
    if p < 0.001:
        return "p<0.001"
    return f"p={p:.3f}" if p < 0.01 else f"p={p:.2f}"


def table(df: pd.DataFrame) -> str:
    """GitHub-markdown table (pipes in cells escaped)."""
    df = df.map(lambda v: str(v).replace("|", "\\|").replace("\n", " "))
    return df.to_markdown(index=False, tablefmt="github", disable_numparse=True)
