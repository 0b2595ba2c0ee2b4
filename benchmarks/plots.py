"""PNG plots for the report (matplotlib, Agg backend).

Renderers take what ``report.py`` already computed: the per-scenario aggregate table
(``report.aggregate``; one row per variant/strategy group, ``<col>__mean``, the 95% interval
across seeds ``__lo``/``__hi`` and the bootstrap interval over test images ``__blo``/``__bhi``)
and the scenario's cell records. Scores are plotted in points (x100). Error bars are 95%
intervals, never std: across seeds where a row has several, else the bootstrap over test
images (where there is none, no bar). ``write_plots`` makes all of them and returns
{title: path} plus notes on anything it had to skip.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

__all__ = ["acc_vs_latency", "anomaly_maps", "forgetting_bars", "interval", "mean_r", "memory_bars",
           "per_task_curves", "r_heatmaps", "seed_r", "write_plots", "PLOT_NAMES"]

DPI = 110
PLOT_NAMES = ("r_matrix_image_auroc", "acc_vs_latency", "forgetting", "per_task", "memory", "anomaly_maps")
METRIC_NAMES = {"image_auroc": "image AUROC", "pixel_auroc": "pixel AUROC", "pixel_aupro": "AUPRO"}


def _label(rec: dict) -> str:
    """Group label of a record, as in report.py."""
    return f"{rec.get('variant')} / {rec.get('strategy')}" + (" [task-aware]" if rec.get("task_aware") else "")


def _colors(labels: list[str]) -> dict[str, tuple]:
    """One stable colour per group label."""
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    return {lab: cmap(i % cmap.N) for i, lab in enumerate(labels)}


def _save(fig: plt.Figure, path: Path) -> Path:
    """Save and close a figure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _nanmean(a: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """nanmean without the all-NaN RuntimeWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(a, axis=axis)


def mean_r(recs: list[dict], metric: str = "image_auroc") -> dict[str, np.ndarray]:
    """Seed-mean R matrix (points) per group label over ok records (NaN where never evaluated)."""
    stacks: dict[str, list[np.ndarray]] = {}
    for rec in recs:
        rows = (rec.get("R") or {}).get(metric)
        if rec.get("status") != "ok" or not rows:
            continue
        R = np.array([[np.nan if v is None else float(v) for v in row] for row in rows]) * 100
        stacks.setdefault(_label(rec), []).append(R)
    return {lab: _nanmean(np.stack([m for m in ms if m.shape == ms[0].shape]), axis=0)
            for lab, ms in stacks.items()}


def seed_r(recs: list[dict], metric: str = "image_auroc") -> dict[str, list[np.ndarray]]:
    """Per group label, one R matrix (points) per ok seed, for intervals across seeds."""
    stacks: dict[str, list[np.ndarray]] = {}
    for rec in recs:
        rows = (rec.get("R") or {}).get(metric)
        if rec.get("status") == "ok" and rows:
            R = np.array([[np.nan if v is None else float(v) for v in row] for row in rows]) * 100
            stacks.setdefault(_label(rec), []).append(R)
    return stacks


def r_heatmaps(mats: dict[str, np.ndarray], task_names: list[str], path: Path,
               metric: str = "image_auroc") -> Path | None:
    """One heatmap per group of R[t, k]; tasks not yet seen (t < k) greyed out."""
    mats = {k: v for k, v in mats.items() if np.isfinite(v).any()}
    if not mats:
        return None
    n = len(mats)
    ncols = min(n, 3)
    nrows = -(-n // ncols)
    T = next(iter(mats.values())).shape[0]
    side = min(max(3.2, 0.45 * T + 1.6), 6.0)
    fig, axes = plt.subplots(nrows, ncols, figsize=(side * ncols + 0.8, side * nrows), squeeze=False,
                             layout="constrained")
    seen_vals = np.concatenate([m[np.tril_indices(m.shape[0])] for m in mats.values()])
    lo = float(np.nanmin(seen_vals)) if np.isfinite(seen_vals).any() else 0.0
    vmin = max(0.0, min(90.0, np.floor(lo / 5) * 5))
    cmap = plt.get_cmap("viridis").with_extremes(bad="#e6e6e6")
    im = None
    for ax, (lab, m) in zip(axes.flat, mats.items(), strict=False):
        shown = np.where(np.tril(np.ones_like(m, dtype=bool)), m, np.nan)
        im = ax.imshow(np.ma.masked_invalid(shown), cmap=cmap, vmin=vmin, vmax=100)
        Tm = m.shape[0]
        if Tm <= 10:
            for (t, k), v in np.ndenumerate(shown):
                if np.isfinite(v):
                    ax.text(k, t, f"{v:.1f}", ha="center", va="center", fontsize=8 if Tm <= 6 else 6.5,
                            color="white" if v < vmin + 0.6 * (100 - vmin) else "black")
        names = task_names if len(task_names) == Tm and Tm <= 8 else [str(i + 1) for i in range(Tm)]
        ax.set_xticks(range(Tm), names, rotation=45 if Tm > 3 else 0, ha="right" if Tm > 3 else "center",
                      fontsize=8)
        ax.set_yticks(range(Tm), [str(i + 1) for i in range(Tm)], fontsize=8)
        ax.set_xlabel("evaluated on task k")
        ax.set_ylabel("after training task t")
        ax.set_title(lab, fontsize=10)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label=f"{METRIC_NAMES.get(metric, metric)} (points)")
    fig.suptitle(f"R matrix, {METRIC_NAMES.get(metric, metric)} (mean over seeds; grey = not evaluated/unseen)",
                 fontsize=11)
    return _save(fig, path)


def _col(agg: pd.DataFrame, name: str) -> np.ndarray:
    """An aggregated column as floats (NaN where absent)."""
    return agg.get(name, pd.Series(np.nan, index=agg.index)).to_numpy(float)


def interval(agg: pd.DataFrame, col: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, lo, hi) of an aggregated column: the 95% interval across seeds where a row has
    one, else the bootstrap interval over test images, else NaN (no error bar)."""
    mean = _col(agg, f"{col}__mean")
    lo, hi = _col(agg, f"{col}__lo"), _col(agg, f"{col}__hi")
    seeds = np.isfinite(lo) & np.isfinite(hi)
    lo = np.where(seeds, lo, _col(agg, f"{col}__blo"))
    hi = np.where(seeds, hi, _col(agg, f"{col}__bhi"))
    return mean, lo, hi


def _err(mean: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(2, n) asymmetric error-bar lengths for matplotlib; 0 where there is no interval."""
    return np.nan_to_num(np.stack([mean - lo, hi - mean]).clip(min=0))


def acc_vs_latency(agg: pd.DataFrame, path: Path) -> Path | None:
    """Image-AUROC ACC vs latency p50 per group, with the Pareto front (faster and better).

    Error bars: 95% intervals of ACC (seeds, else test-image bootstrap) and of latency (seeds).
    """
    acc, acc_lo, acc_hi = interval(agg, "image_auroc_acc")
    lat, lat_lo, lat_hi = interval(agg, "latency_ms_p50")
    ok = np.isfinite(acc) & np.isfinite(lat)
    if not ok.any():
        return None
    colors = _colors(list(agg["label"]))
    yerr, xerr = _err(acc, acc_lo, acc_hi) * 100, _err(lat, lat_lo, lat_hi)
    fig, ax = plt.subplots(figsize=(7, 4.8))
    for i in np.flatnonzero(ok):
        lab = agg["label"].iloc[i]
        ax.errorbar(lat[i], acc[i] * 100, xerr=xerr[:, i : i + 1], yerr=yerr[:, i : i + 1], fmt="o",
                    ms=7, color=colors[lab], capsize=3, label=lab)
    order = sorted(np.flatnonzero(ok), key=lambda i: (lat[i], -acc[i]))
    front, best = [], -np.inf
    for i in order:
        if acc[i] > best:
            front.append(i)
            best = acc[i]
    ax.step(lat[front], acc[front] * 100, where="post", ls="--", color="0.4", lw=1.2, label="Pareto front", zorder=0)
    if lat[ok].min() > 0 and lat[ok].max() / lat[ok].min() > 20:
        ax.set_xscale("log")
    ax.set_xlabel("latency p50 (ms / image, batch 1)")
    ax.set_ylabel("image AUROC ACC (points, 95% interval)")
    ax.set_title("Accuracy vs latency (up and left is better)")
    ax.grid(alpha=0.3)
    ax.margins(x=0.15, y=0.15)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(fig, path)


def _hbars(ax: plt.Axes, labels: list[str], mean: np.ndarray, lo: np.ndarray, hi: np.ndarray,
           colors: dict, fmt: str = "{:.1f}") -> None:
    """Horizontal bars with 95%-interval error bars and value labels; NaN bars written as n/a."""
    y = np.arange(len(labels))
    err = _err(mean, lo, hi)
    ax.barh(y, np.nan_to_num(mean), xerr=err, color=[colors[lab] for lab in labels], capsize=3,
            height=0.6)
    span = np.nanmax(np.abs(mean) + err[1]) if np.isfinite(mean).any() else 1.0
    for yi, v, up in zip(y, mean, err[1], strict=True):
        text = "n/a" if not np.isfinite(v) else fmt.format(v)
        x = max(v + up, 0) if np.isfinite(v) else 0  # right of the error bar
        ax.text(x + 0.02 * (span or 1), yi, text, va="center", fontsize=8)
    ax.set_yticks(y, labels, fontsize=8)
    if not ax.yaxis_inverted():  # panels share y: inverting each would flip it back
        ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    ax.margins(x=0.2)


def forgetting_bars(agg: pd.DataFrame, path: Path) -> Path | None:
    """FM (points) per group for image AUROC, pixel AUROC and AUPRO."""
    metrics = [m for m in METRIC_NAMES if np.isfinite(_col(agg, f"{m}_fm__mean")).any()]
    if not metrics:
        return None
    labels = list(agg["label"])
    colors = _colors(labels)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics) + 2, 0.45 * len(labels) + 1.6),
                             sharey=True, squeeze=False)
    for ax, m in zip(axes[0], metrics, strict=True):
        mean, lo, hi = interval(agg, f"{m}_fm")
        _hbars(ax, labels, mean * 100, lo * 100, hi * 100, colors)
        ax.set_title(f"FM, {METRIC_NAMES[m]}", fontsize=10)
        ax.set_xlabel("forgetting (points, lower is better)")
        ax.axvline(0, color="0.3", lw=0.8)
    fig.suptitle("Forgetting per variant / strategy (joint: n/a; bars: 95% intervals)", fontsize=11)
    return _save(fig, path)


def _curve(m: np.ndarray) -> np.ndarray:
    """Mean over tasks seen so far (k <= t) after each task t."""
    return np.array([_nanmean(m[t, : t + 1]) for t in range(m.shape[0])])


def per_task_curves(mats: dict[str, np.ndarray], path: Path, metric: str = "image_auroc",
                    seeds: dict[str, list[np.ndarray]] | None = None) -> Path | None:
    """Mean score over tasks seen so far (k <= t) after each task t, one line per group.

    Where a group has several seeds (``seeds``: per-seed R matrices), each point carries the
    95% Student-t interval across seeds of that seed's curve value.
    """
    from nfbench.benchmarks.statistics import seed_interval

    curves = {lab: _curve(m) for lab, m in mats.items()}
    curves = {k: v for k, v in curves.items() if np.isfinite(v).any()}
    if not curves:
        return None
    colors = _colors(list(mats))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    T = max(len(v) for v in curves.values())
    for lab, c in curves.items():
        x = np.arange(1, len(c) + 1)
        fin = np.isfinite(c)
        per_seed = [_curve(m) for m in (seeds or {}).get(lab, []) if m.shape == (len(c), len(c))]
        ci = np.array([seed_interval([p[t] for p in per_seed]) for t in range(len(c))]) \
            if len(per_seed) > 1 else np.full((len(c), 2), np.nan)
        err = _err(c, ci[:, 0], ci[:, 1])[:, fin]
        single = fin.sum() == 1  # joint: one evaluation, drawn as a reference level
        if single:
            ax.axhline(c[fin][0], color=colors[lab], ls="--", lw=1.2)
        ax.errorbar(x[fin], c[fin], yerr=err if np.isfinite(ci).any() else None,
                    fmt="*" if single else "o-", ms=12 if single else 6, color=colors[lab],
                    capsize=3, label=f"{lab} (single eval)" if single else lab)
    ax.set_xticks(range(1, T + 1))
    ax.set_xlabel("after training task t")
    ax.set_ylabel(f"mean {METRIC_NAMES.get(metric, metric)} over tasks 1..t (points)")
    ax.set_title("Per-task curve (class-incremental stream; bars: 95% interval across seeds)"
                 if seeds and any(len(v) > 1 for v in seeds.values())
                 else "Per-task curve (class-incremental stream)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(fig, path)


def memory_bars(agg: pd.DataFrame, path: Path) -> Path | None:
    """Memory (MB) per group at batch 1 and at batch 32 (older records: their one peak in both),
    with the kind of measurement in the axis label and 95% intervals across seeds."""
    cols = [c for c in ("memory_mb_batch1", "memory_mb_batch32")
            if np.isfinite(_col(agg, f"{c}__mean")).any()]
    if not cols and np.isfinite(_col(agg, "peak_memory_mb__mean")).any():
        cols = ["peak_memory_mb"]
    if not cols:
        return None
    labels = list(agg["label"])
    kinds = sorted({k for ks in agg["memory_kind"].dropna() for k in str(ks).split("/") if k})
    fig, axes = plt.subplots(1, len(cols), figsize=(5 * len(cols) + 2, 0.45 * len(labels) + 1.6),
                             sharey=True, squeeze=False)
    titles = {"memory_mb_batch1": "batch 1", "memory_mb_batch32": "batch 32", "peak_memory_mb": "peak"}
    for ax, col in zip(axes[0], cols, strict=True):
        mean, lo, hi = interval(agg, col)
        _hbars(ax, labels, mean, lo, hi, _colors(labels), fmt="{:.0f} MB")
        ax.set_title(f"memory, {titles[col]}", fontsize=10)
        ax.set_xlabel(f"MB ({', '.join(kinds) or 'kind unknown'})")
    fig.suptitle("Memory per variant / strategy", fontsize=11)
    return _save(fig, path)


def _read_scores(path: Path) -> list[dict] | None:
    """Rows of a per-sample scores CSV, or None when missing."""
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return None


def _pick_samples(rows: list[dict], n: int) -> list[dict]:
    """Deterministic anomalous test samples of the final evaluation, spread over classes."""
    last = max(int(r["after_task"]) for r in rows)
    anom = [r for r in rows if int(r["after_task"]) == last and str(r["label"]) in ("1", "1.0", "True")]
    anom.sort(key=lambda r: (str(r.get("has_mask")).lower() not in ("true", "1"), int(r["task"]),
                             r["class_name"], r["path"]))
    classes = list(dict.fromkeys(sorted(r["class_name"] for r in anom)))
    if not classes:
        return []
    idx = sorted({int(round(i)) for i in np.linspace(0, len(classes) - 1, min(n, len(classes)))})
    picked = [next(r for r in anom if r["class_name"] == classes[i]) for i in idx]
    picked += [r for r in anom if r not in picked][: n - len(picked)]
    return picked


def _load_image(p: str, results_dir: Path, size: tuple[int, int] | None) -> np.ndarray | None:
    """RGB image from a scores-CSV path (absolute, or relative to results_dir / cwd)."""
    from PIL import Image

    for cand in (Path(p), results_dir / p):
        if cand.is_file():
            try:
                img = Image.open(cand).convert("RGB")
            except OSError:
                return None
            return np.asarray(img.resize((size[1], size[0])) if size else img)
    return None


def _load_column(rec: dict, rows: list[dict], samples: list[dict], results_dir: Path) -> dict | None:
    """Final-evaluation maps/masks of ``samples`` for one cell plus its colour range, or None."""
    last = max(int(r["after_task"]) for r in rows)
    by_path = {r["path"]: int(r["row"]) for r in rows if int(r["after_task"]) == last}
    need = [by_path.get(s["path"]) for s in samples]
    try:
        with np.load(results_dir / rec["scores"].get("maps", "")) as z:
            key = f"maps_t{last}" if f"maps_t{last}" in z.files else max(
                (k for k in z.files if k.startswith("maps_t")), key=lambda k: int(k[6:]))
            all_maps = z[key]
            masks = z["masks"] if "masks" in z.files else None
    except (OSError, ValueError, KeyError):
        return None
    sub = all_maps[:: max(1, len(all_maps) // 64)].astype(np.float32)
    lo, hi = (np.nanpercentile(sub, [1, 99.9]) if np.isfinite(sub).any() else (0.0, 1.0))
    return {"maps": [None if r is None else all_maps[r].astype(np.float32) for r in need],
            "masks": [None if r is None or masks is None else masks[r].astype(bool) for r in need],
            "lo": float(lo), "hi": float(hi) if hi > lo else float(lo) + 1e-6,
            "title": f"{rec.get('variant')}\n({rec.get('strategy')})"}


def anomaly_maps(recs: list[dict], results_dir: Path, path: Path, n: int = 4) -> tuple[Path | None, str | None]:
    """Rows = the same anomalous test images; columns = input, mask, then one map per variant.

    Per variant the cell is the joint one if present, else the first strategy (lowest seed);
    its final evaluation ``maps_t{T-1}`` is shown over the input, scaled per variant to the
    1st..99.9th percentile of all its maps. Returns (path or None, note or None).
    """
    rank = {"joint": 0, "finetune": 1, "replay": 2}
    ok = sorted((r for r in recs if r.get("status") == "ok" and r.get("scores")),
                key=lambda r: (str(r.get("variant")), rank.get(str(r.get("strategy")), 3),
                               str(r.get("strategy")), bool(r.get("task_aware")), r.get("seed") or 0))
    chosen: dict[str, dict] = {}
    for r in ok:
        chosen.setdefault(str(r.get("variant")), r)
    cols, missing, samples = [], [], None
    for var, rec in chosen.items():
        try:
            rows = _read_scores(results_dir / rec["scores"].get("csv", ""))
            if rows and samples is None:
                samples = _pick_samples(rows, n) or None
            col = _load_column(rec, rows, samples, results_dir) if rows and samples else None
        except (KeyError, ValueError, TypeError):  # malformed CSV
            col = None
        if col is None:
            missing.append(var)
        else:
            cols.append(col)
    if not cols:
        return None, "anomaly-map figure skipped: no readable scores CSV + maps npz with anomalous samples" + (
            f" (missing for {', '.join(missing)})" if missing else "")
    nc = 2 + len(cols)
    fig, axes = plt.subplots(len(samples), nc, figsize=(2.1 * nc, 2.2 * len(samples)), squeeze=False)
    notes = set()
    for i, s in enumerate(samples):
        mask = next((c["masks"][i] for c in cols if c["masks"][i] is not None), None)
        hw = next((c["maps"][i].shape for c in cols if c["maps"][i] is not None), None)
        img = _load_image(s["path"], results_dir, hw)
        ax = axes[i, 0]
        if img is None:
            notes.add("some input images could not be read")
            ax.text(0.5, 0.5, "image\nnot found", ha="center", va="center", transform=ax.transAxes)
        else:
            ax.imshow(img)
        ax.set_ylabel(f"{s['class_name']}\n{Path(s['path']).name}", fontsize=8)
        flag = s.get("has_mask")  # older CSVs without the column: trust the stored mask
        has = (str(flag).strip().lower() in ("true", "1", "1.0") if flag is not None
               else mask is not None and bool(mask.any()))
        if has and mask is not None:
            axes[i, 1].imshow(mask, cmap="gray", vmin=0, vmax=1)
        else:  # a black panel would read as "no defect": say that the ground truth is missing
            axes[i, 1].set_facecolor("0.85")
            axes[i, 1].text(0.5, 0.5, "no mask", ha="center", va="center", fontsize=9,
                            transform=axes[i, 1].transAxes)
            mask = None
        for j, c in enumerate(cols):
            ax = axes[i, 2 + j]
            m = c["maps"][i]
            if m is None:
                ax.text(0.5, 0.5, "not in\nthis cell", ha="center", va="center", transform=ax.transAxes)
            else:
                if img is not None and img.shape[:2] == m.shape:
                    ax.imshow(img)
                ax.imshow(np.clip((m - c["lo"]) / (c["hi"] - c["lo"]), 0, 1), cmap="jet", vmin=0, vmax=1,
                          alpha=0.55 if img is not None else 1.0)
                if mask is not None and mask.shape == m.shape and mask.any():
                    ax.contour(mask.astype(float), levels=[0.5], colors="white", linewidths=0.8)
            if i == 0:
                ax.set_title(c["title"], fontsize=9)
        if i == 0:
            axes[i, 0].set_title("input", fontsize=9)
            axes[i, 1].set_title("ground truth", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Anomaly maps, final evaluation (white contour = ground truth)", fontsize=10)
    fig.tight_layout()
    note = "; ".join(sorted(notes) + ([f"no maps for {', '.join(missing)}"] if missing else []))
    return _save(fig, path), (f"anomaly-map figure: {note}" if note else None)


def write_plots(recs: list[dict], agg: pd.DataFrame, results_dir: Path, plot_dir: Path,
                suffix: str = "") -> tuple[dict[str, Path], list[str]]:
    """All plots of one scenario; returns ({title: path} of those made, notes)."""
    made: dict[str, Path] = {}
    notes: list[str] = []
    if agg.empty or not any(r.get("status") == "ok" for r in recs):
        return made, ["no plots: no successful cells"]
    order = list(agg["label"])
    mats = mean_r(recs, "image_auroc")
    mats = {lab: mats[lab] for lab in order if lab in mats}
    tasks = next((r["tasks"] for r in recs if r.get("tasks")), [])
    names = ["+".join(t) for t in tasks]
    jobs = [
        ("R-matrix heatmaps (image AUROC)", f"r_matrix_image_auroc{suffix}.png",
         lambda p: r_heatmaps(mats, names, p)),
        ("ACC vs latency (Pareto front)", f"acc_vs_latency{suffix}.png", lambda p: acc_vs_latency(agg, p)),
        ("Forgetting (FM)", f"forgetting{suffix}.png", lambda p: forgetting_bars(agg, p)),
        ("Per-task curves", f"per_task{suffix}.png",
         lambda p: per_task_curves(mats, p, seeds=seed_r(recs, "image_auroc"))),
        ("Memory", f"memory{suffix}.png", lambda p: memory_bars(agg, p)),
    ]
    for title, name, fn in jobs:
        p = fn(plot_dir / name)
        if p is None:
            notes.append(f"{title}: skipped (no data)")
        else:
            made[title] = p
    p, note = anomaly_maps(recs, results_dir, plot_dir / f"anomaly_maps{suffix}.png")
    if p is not None:
        made["Anomaly maps"] = p
    if note:
        notes.append(note)
    return made, notes
