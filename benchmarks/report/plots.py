"""The report's figures (matplotlib, Agg backend), built from frames only: no file is read.

Each function returns a Figure (or None when there is nothing to draw); ``files.save_figure``
writes it. Inputs are what ``data`` computed: the per-scenario aggregate (one row per
variant/strategy group, ``<col>__mean`` with its 95% intervals) and seed-mean R matrices.
Scores are plotted in points (x100). Error bars are 95% intervals, never std
(``data.interval``): on seeds and test images together for the primary ACC, else across seeds
where a row has several, else the bootstrap over test images (where there is none, no bar).
One colour per model and one marker (and line style) per strategy, so legends stay short.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scikit_posthocs as skp  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from nfbench.benchmarks.measuring.metrics import metric_spec  # noqa: E402
from nfbench.benchmarks.measuring.ranking import RankTest  # noqa: E402
from nfbench.benchmarks.measuring.statistics import seed_interval  # noqa: E402
from nfbench.benchmarks.report import data  # noqa: E402
from nfbench.benchmarks.report.data import MapColumn, MapRow  # noqa: E402
from nfbench.benchmarks.running.strategies import DEFAULT_STRATEGY, strategy_of_label  # noqa: E402

__all__ = ["PLOT_NAMES", "acc_vs_latency", "anomaly_maps", "cd_diagram", "compare_figure",
           "forgetting_bars", "memory_bars", "per_task_curves", "r_heatmaps",
           "routing_over_tasks", "state_per_task", "styles"]

PLOT_NAMES = ("r_matrix_image_auroc", "acc_vs_latency", "forgetting", "per_task", "memory",
              "state_per_task", "routing", "anomaly_maps", "critical_difference")


# one marker and line style per strategy, in the strategies' own order
MARKERS = ("o", "s", "^", "*", "D", "v", "P", "X")
LINES = ("-", "--", "-.", ":")


@dataclass(frozen=True)
class Style:
    """How one group is drawn: the colour of its model, the marker and line of its strategy."""

    color: tuple
    marker: str
    line: str
    model: str
    strategy: str


def styles(agg: pd.DataFrame) -> dict[str, Style]:
    """Per group label: one colour per model (variant), one marker per strategy, so a legend
    needs one entry per model and one per strategy instead of one per row."""
    variants = list(dict.fromkeys(agg["variant"]))
    cmap = plt.get_cmap("tab10" if len(variants) <= 10 else "tab20")
    order = data.strategy_order()
    out = {}
    for lab, v, s, a in zip(agg["label"], agg["variant"], agg["strategy"], agg["task_aware"],
                            strict=True):
        kind = data.strategy_kind(str(s))
        name = kind + (" [task-aware]" if a else "")
        rank = order.index(kind) if kind in order else len(order)
        out[str(lab)] = Style(cmap(variants.index(v) % cmap.N), MARKERS[rank % len(MARKERS)],
                              LINES[rank % len(LINES)], str(v), name)
    return out


def _resolve(style: dict[str, Style] | None, labels: list[str]) -> dict[str, Style]:
    """``style``, or styles read off "variant / strategy" labels where none was given."""
    if style is not None and all(lab in style for lab in labels):
        return style
    parts = [(lab.split(" / ", 1) + [DEFAULT_STRATEGY])[:2] for lab in labels]
    return styles(pd.DataFrame({"label": labels, "variant": [p[0] for p in parts],
                                "strategy": [p[1] for p in parts], "task_aware": False}))


def _legends(ax: Axes, used: dict[str, Style], extra: list | None = None) -> None:
    """Two legends right of the figure (constrained layout): models (colours) and strategies
    (markers and lines), plus ``extra`` handles."""
    models = {s.model: s for s in used.values()}
    order = data.strategy_order()
    kinds = dict(sorted({s.strategy: s for s in used.values()}.items(),
                        key=lambda kv: order.index(kv[0].split()[0]) if kv[0].split()[0] in order
                        else len(order)))
    fig = ax.get_figure()
    fig.legend(handles=[Line2D([], [], color=s.color, marker="o", ls="", label=m)
                        for m, s in models.items()],
               title="model", fontsize=8, title_fontsize=8, loc="outside right upper")
    fig.legend(handles=[Line2D([], [], color="0.3", marker=s.marker, ls=s.line, label=k)
                        for k, s in kinds.items()] + (extra or []),
               title="strategy", fontsize=8, title_fontsize=8, loc="outside right lower")


def _err(mean: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(2, n) asymmetric error-bar lengths for matplotlib; 0 where there is no interval."""
    return np.nan_to_num(np.stack([mean - lo, hi - mean]).clip(min=0))


def _col(agg: pd.DataFrame, name: str) -> np.ndarray:
    """An aggregated column as floats (NaN where absent)."""
    return agg.get(name, pd.Series(np.nan, index=agg.index)).to_numpy(float)


def _label(metric: str) -> str:
    return metric_spec(metric).label


# ---------------------------------------------------------------- R matrices


def _task_ticks(ax: Axes, T: int, names: list[str]) -> None:
    """Integer task numbers (1..T) on y; class names on x where they fit, else numbers."""
    x = names if len(names) == T and T <= 8 else [str(i + 1) for i in range(T)]
    ax.set_xticks(range(T), x, rotation=45 if T > 3 else 0, ha="right" if T > 3 else "center",
                  fontsize=8)
    ax.set_yticks(range(T), [str(i + 1) for i in range(T)], fontsize=8)
    ax.set_xlabel("evaluated on task k")
    ax.set_ylabel("after training task t")


def _heatmap(ax: Axes, m: np.ndarray, vmin: float, cmap: object) -> object:
    """One R matrix, unseen entries (t < k) greyed out, values written where T <= 10."""
    shown = np.where(np.tril(np.ones_like(m, dtype=bool)), m, np.nan)
    im = ax.imshow(np.ma.masked_invalid(shown), cmap=cmap, vmin=vmin, vmax=100)
    T = m.shape[0]
    if T <= 10:
        for (t, k), v in np.ndenumerate(shown):
            if np.isfinite(v):
                ax.text(k, t, f"{v:.1f}", ha="center", va="center", fontsize=8 if T <= 6 else 6.5,
                        color="white" if v < vmin + 0.6 * (100 - vmin) else "black")
    return im


def _hatch(ax: Axes, tied: np.ndarray) -> None:
    """Hatch the entries (t, k) with a tied class (report/ties.py)."""
    for t, k in zip(*np.nonzero(np.tril(tied)), strict=True):
        ax.add_patch(Rectangle((k - 0.5, t - 0.5), 1, 1, fill=False, hatch="///",
                               edgecolor="red", linewidth=0))


def r_heatmaps(mats: dict[str, np.ndarray], task_names: list[str],
               metric: str = data.PRIMARY,
               tied: dict[str, np.ndarray] | None = None) -> Figure | None:
    """One heatmap per group of R[t, k] (points); tasks not yet seen (t < k) greyed out;
    entries with a tied class (``tied``: per label, (T, T) bool) hatched."""
    mats = {k: v for k, v in mats.items() if np.isfinite(v).any()}
    if not mats:
        return None
    n, T = len(mats), next(iter(mats.values())).shape[0]
    ncols = min(n, 3)
    nrows = -(-n // ncols)
    side = min(max(3.2, 0.45 * T + 1.6), 6.0)
    fig, axes = plt.subplots(nrows, ncols, figsize=(side * ncols + 0.8, side * nrows),
                             squeeze=False, layout="constrained")
    seen = np.concatenate([m[np.tril_indices(m.shape[0])] for m in mats.values()])
    lo = float(np.nanmin(seen)) if np.isfinite(seen).any() else 0.0
    vmin = max(0.0, min(90.0, np.floor(lo / 5) * 5))
    cmap = plt.get_cmap("viridis").with_extremes(bad="#e6e6e6")
    for ax, (lab, m) in zip(axes.flat, mats.items(), strict=False):
        im = _heatmap(ax, m, vmin, cmap)
        if tied and lab in tied:
            _hatch(ax, tied[lab])
        _task_ticks(ax, m.shape[0], task_names)
        ax.set_title(lab, fontsize=10)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label=f"{_label(metric)} (points)")
    hatched = "\nred hatching: a class with tied image scores (see the leaderboard)" if tied else ""
    fig.suptitle(f"R matrix, {_label(metric)} (mean over seeds; grey = not evaluated/unseen)"
                 f"{hatched}", fontsize=11)
    return fig


def _curve(m: np.ndarray) -> np.ndarray:
    """Mean over tasks seen so far (k <= t) after each task t."""
    return np.array([data.nanmean(m[t, : t + 1]) for t in range(m.shape[0])])


def _curve_interval(c: np.ndarray, per_seed: list[np.ndarray]) -> np.ndarray:
    """(T, 2) 95% Student-t interval across seeds of each point of a curve (NaN: < 2 seeds)."""
    if len(per_seed) < 2:
        return np.full((len(c), 2), np.nan)
    return np.array([seed_interval([p[t] for p in per_seed]) for t in range(len(c))])


def _draw_curve(ax: Axes, lab: str, c: np.ndarray, ci: np.ndarray, style: Style) -> None:
    x = np.arange(1, len(c) + 1)
    fin = np.isfinite(c)
    err = _err(c, ci[:, 0], ci[:, 1])[:, fin]
    single = fin.sum() == 1  # joint: one evaluation, drawn as a reference level
    if single:  # joint: one evaluation, drawn as a level
        ax.axhline(c[fin][0], color=style.color, ls=style.line, lw=1.2)
    ax.errorbar(x[fin], c[fin], yerr=err if np.isfinite(ci).any() else None,
                marker=style.marker, ls="" if single else style.line, ms=10 if single else 6,
                color=style.color, capsize=3, label=lab)


def per_task_curves(mats: dict[str, np.ndarray], style: dict[str, Style] | None = None,
                    metric: str = data.PRIMARY,
                    seeds: dict[str, list[np.ndarray]] | None = None) -> Figure | None:
    """Mean score over tasks seen so far (k <= t) after each task t, one line per group.

    Where a group has several seeds (``seeds``: per-seed R matrices), each point carries the
    95% Student-t interval across seeds of that seed's curve value.
    """
    curves = {lab: _curve(m) for lab, m in mats.items()}
    curves = {k: v for k, v in curves.items() if np.isfinite(v).any()}
    if not curves:
        return None
    style = _resolve(style, list(curves))
    fig, ax = plt.subplots(figsize=(7.5, 4.5), layout="constrained")
    for lab, c in curves.items():
        per_seed = [_curve(m) for m in (seeds or {}).get(lab, []) if m.shape == (len(c), len(c))]
        _draw_curve(ax, lab, c, _curve_interval(c, per_seed), style[lab])
    ax.set_xticks(range(1, max(len(v) for v in curves.values()) + 1))
    ax.set_xlabel("after training task t")
    ax.set_ylabel(f"mean {_label(metric)} over tasks 1..t (points)")
    several = seeds and any(len(v) > 1 for v in seeds.values())
    ax.set_title("Per-task curve (class-incremental stream"
                 + (";\nbars: 95% interval across seeds)" if several else ")"))
    ax.grid(alpha=0.3)
    _legends(ax, {lab: style[lab] for lab in curves})
    return fig


# ---------------------------------------------------------------- aggregate rows


def _pareto(lat: np.ndarray, acc: np.ndarray, ok: np.ndarray) -> list[int]:
    """Rows on the Pareto front (no other row is both faster and better)."""
    front, best = [], -np.inf
    for i in sorted(np.flatnonzero(ok), key=lambda i: (lat[i], -acc[i])):
        if acc[i] > best:
            front.append(i)
            best = acc[i]
    return front


def _choosable(agg: pd.DataFrame) -> np.ndarray:
    """Rows a user would pick for a continual stream: the flows' continual strategies (not a
    reference ceiling, not the joint upper bound, which needs every class at once)."""
    flows = agg["is_flow"].to_numpy(bool) if "is_flow" in agg else np.ones(len(agg), bool)
    once = np.array([strategy_of_label(str(s)).single_phase for s in agg["strategy"]], bool)
    return flows & ~once


def acc_vs_latency(agg: pd.DataFrame, style: dict[str, Style] | None = None) -> Figure | None:
    """Primary ACC vs latency p50 per group, with the Pareto front (faster and better) over
    the rows a user would choose (``_choosable``).

    Error bars: 95% intervals of ACC (``data.interval``) and of latency (seeds).
    """
    spec = metric_spec(data.PRIMARY)
    acc, acc_lo, acc_hi = data.interval(agg, f"{spec.key}_acc")
    lat, lat_lo, lat_hi = data.interval(agg, "latency_ms_p50")
    ok = np.isfinite(acc) & np.isfinite(lat)
    if not ok.any():
        return None
    yerr, xerr = _err(acc, acc_lo, acc_hi) * spec.scale, _err(lat, lat_lo, lat_hi)
    fig, ax = plt.subplots(figsize=(7.5, 4.8), layout="constrained")
    labels = [str(lab) for lab in agg["label"]]
    style = _resolve(style, labels)
    for i in np.flatnonzero(ok):
        st = style[labels[i]]
        ax.errorbar(lat[i], acc[i] * spec.scale, xerr=xerr[:, i : i + 1], yerr=yerr[:, i : i + 1],
                    marker=st.marker, ms=8, ls="", color=st.color, capsize=2, elinewidth=0.8,
                    alpha=0.9, label=labels[i])
    front = _pareto(lat, acc, ok & _choosable(agg))
    extra = []
    if front:
        ax.step(lat[front], acc[front] * spec.scale, where="post", ls="--", color="0.4", lw=1.2,
                zorder=0, label="Pareto front")
        extra = [Line2D([], [], ls="--", color="0.4", label="Pareto front (flows, continual)")]
    if lat[ok].min() > 0 and lat[ok].max() / lat[ok].min() > 20:
        ax.set_xscale("log")
    ax.set_xlabel("latency p50 (ms / image, batch 1)")
    ax.set_ylabel(f"{spec.label} ACC (points, 95% interval)")
    ax.set_title("Accuracy vs latency (up and left is better)")
    ax.grid(alpha=0.3)
    ax.margins(x=0.15, y=0.15)
    _legends(ax, {labels[i]: style[labels[i]] for i in np.flatnonzero(ok)}, extra)
    return fig


def _hbars(ax: Axes, labels: list[str], mean: np.ndarray, lo: np.ndarray, hi: np.ndarray,
           style: dict[str, Style], fmt: str = "{:.1f}") -> None:
    """Horizontal bars with 95%-interval error bars and value labels; NaN bars written n/a."""
    y = np.arange(len(labels))
    err = _err(mean, lo, hi)
    ax.barh(y, np.nan_to_num(mean), xerr=err, color=[style[lab].color for lab in labels], capsize=3,
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


def _bar_panels(labels: list[str], n: int, width: float) -> tuple[Figure, np.ndarray]:
    return plt.subplots(1, n, figsize=(width * n + 2, 0.45 * len(labels) + 1.6), sharey=True,
                        squeeze=False)


def forgetting_bars(agg: pd.DataFrame, style: dict[str, Style] | None = None) -> Figure | None:
    """FM (points) per group, one panel per summarised metric that has any."""
    specs = [s for s in data.summarised()
             if not s.pooled and np.isfinite(_col(agg, f"{s.key}_fm__mean")).any()]
    if not specs:
        return None
    labels = [str(lab) for lab in agg["label"]]
    style = _resolve(style, labels)
    fig, axes = _bar_panels(labels, len(specs), 3.6)
    for ax, spec in zip(axes[0], specs, strict=True):
        mean, lo, hi = data.interval(agg, f"{spec.key}_fm")
        _hbars(ax, labels, mean * spec.scale, lo * spec.scale, hi * spec.scale, style)
        ax.set_title(f"FM, {spec.label}", fontsize=10)
        ax.set_xlabel("forgetting (points, lower is better)")
        ax.axvline(0, color="0.3", lw=0.8)
    fig.suptitle("Forgetting per variant / strategy (joint: n/a; bars: 95% intervals)",
                 fontsize=11)
    return fig


MEMORY_TITLES = {"memory_mb_batch1": "batch 1", "memory_mb_batch32": "batch 32",
                 "peak_memory_mb": "peak"}


def memory_bars(agg: pd.DataFrame, style: dict[str, Style] | None = None) -> Figure | None:
    """Memory (MB) per group at batch 1 and at batch 32 (older records: their one peak in
    both), with the kind of measurement in the axis label and 95% intervals across seeds."""
    cols = [c for c in ("memory_mb_batch1", "memory_mb_batch32")
            if np.isfinite(_col(agg, f"{c}__mean")).any()]
    if not cols and np.isfinite(_col(agg, "peak_memory_mb__mean")).any():
        cols = ["peak_memory_mb"]
    if not cols:
        return None
    labels = [str(lab) for lab in agg["label"]]
    style = _resolve(style, labels)
    kinds = sorted({k for ks in agg["memory_kind"].dropna() for k in str(ks).split("/") if k})
    fig, axes = _bar_panels(labels, len(cols), 5)
    for ax, col in zip(axes[0], cols, strict=True):
        _hbars(ax, labels, *data.interval(agg, col), style, fmt="{:.0f} MB")
        ax.set_title(f"memory, {MEMORY_TITLES[col]}", fontsize=10)
        ax.set_xlabel(f"MB ({', '.join(kinds) or 'kind unknown'})")
    fig.suptitle("Memory per variant / strategy", fontsize=11)
    return fig


# ---------------------------------------------------------------- anomaly maps


def _per_phase_lines(ax: Axes, series: dict[str, np.ndarray], style: dict[str, Style],
                     ylabel: str, title: str) -> None:
    for lab, s in series.items():
        st = style[lab]
        ax.plot(np.arange(1, len(s) + 1), s, marker=st.marker, ls=st.line, color=st.color,
                label=lab)
    ax.set_xticks(range(1, max(len(s) for s in series.values()) + 1))
    ax.set_xlabel("after training task t")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)


def state_per_task(states: dict[str, np.ndarray], style: dict[str, Style] | None = None,
                   trainable: dict[str, np.ndarray] | None = None) -> Figure | None:
    """The model's state (MB) after each task, one line per group: a memory bank that keeps
    every task grows; a flow stays flat. With `trainable`, a second panel: the parameters each
    phase trained (a flow that isolates tasks trains only one task's pieces after the first)."""
    states = {lab: s for lab, s in states.items() if len(s) > 1}  # joint trains once
    if not states:
        return None
    style = _resolve(style, list(states))
    trainable = {lab: t for lab, t in (trainable or {}).items() if lab in states}
    fig, axes = plt.subplots(1, 2 if trainable else 1, figsize=(13 if trainable else 7.5, 4.5),
                             squeeze=False, layout="constrained")
    _per_phase_lines(axes[0, 0], states, style, "model state: parameters + buffers (MB)",
                     "Memory per task\n(a memory bank grows, a flow does not)")
    if trainable:
        _per_phase_lines(axes[0, 1], trainable, style, "parameters trained in the phase",
                         "Parameters per task\n(trainable in each phase)")
        axes[0, 1].set_yscale("log")
    _legends(axes[0, -1], {lab: style[lab] for lab in states})
    return fig


def routing_over_tasks(curves: dict[str, dict[str, np.ndarray]],
                       style: dict[str, Style] | None = None) -> Figure | None:
    """Routing accuracy after each task (mean over the tasks learned so far), normal and
    anomalous test images side by side, one line per routing group."""
    if not any(curves.values()):
        return None
    labels = list(dict.fromkeys(lab for c in curves.values() for lab in c))
    style = _resolve(style, labels)
    fig, axes = plt.subplots(1, len(curves), figsize=(6.5 * len(curves), 4.5), squeeze=False,
                             layout="constrained")
    for ax, (split, series) in zip(axes[0], curves.items(), strict=True):
        if series:
            _per_phase_lines(ax, {lab: 100 * s for lab, s in series.items()}, style,
                             "routing accuracy (%)", f"Routing accuracy, {split} test images")
            ax.set_ylim(0, 102)
    _legends(axes[0, -1], {lab: style[lab] for lab in labels})
    return fig


def _input_panel(ax: Axes, row: MapRow) -> None:
    if row.image is None:
        ax.text(0.5, 0.5, "image\nnot found", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.imshow(row.image)
    ax.set_ylabel(row.label, fontsize=8)


def _mask_panel(ax: Axes, row: MapRow) -> None:
    if row.mask is not None:
        ax.imshow(row.mask, cmap="gray", vmin=0, vmax=1)
    else:  # a black panel would read as "no defect": say that the ground truth is missing
        ax.set_facecolor("0.85")
        ax.text(0.5, 0.5, "no mask", ha="center", va="center", fontsize=9,
                transform=ax.transAxes)


def _map_panel(ax: Axes, row: MapRow, col: MapColumn, m: np.ndarray | None) -> None:
    if m is None:
        ax.text(0.5, 0.5, "not in\nthis cell", ha="center", va="center", transform=ax.transAxes)
        return
    if row.image is not None and row.image.shape[:2] == m.shape:
        ax.imshow(row.image)
    ax.imshow(np.clip((m - col.lo) / (col.hi - col.lo), 0, 1), cmap="jet", vmin=0, vmax=1,
              alpha=0.55 if row.image is not None else 1.0)
    mask = row.mask
    if mask is not None and mask.shape == m.shape and mask.any():
        ax.contour(mask.astype(float), levels=[0.5], colors="white", linewidths=0.8)


def anomaly_maps(rows: list[MapRow], cols: list[MapColumn]) -> Figure:
    """Rows = the same anomalous test images; columns = input, ground truth, then one map per
    variant (its final evaluation over the input, scaled per variant to its colour range)."""
    nc = 2 + len(cols)
    fig, axes = plt.subplots(len(rows), nc, figsize=(2.1 * nc, 2.2 * len(rows)), squeeze=False)
    for i, row in enumerate(rows):
        _input_panel(axes[i, 0], row)
        _mask_panel(axes[i, 1], row)
        for j, col in enumerate(cols):
            _map_panel(axes[i, 2 + j], row, col, col.maps[i])
    for title, ax in zip(["input", "ground truth", *(c.title for c in cols)], axes[0],
                         strict=True):
        ax.set_title(title, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Anomaly maps, final evaluation (white contour = ground truth)", fontsize=10)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- ranks


def cd_diagram(test: RankTest, title: str) -> Figure:
    """Critical-difference diagram (Demšar 2006): mean ranks on an axis (1 = best, left), a
    bar joining methods the Nemenyi test does not tell apart, and the CD as a scale bar."""
    k = len(test.mean_ranks)
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.28 * k), layout="constrained")
    skp.critical_difference_diagram(test.mean_ranks, test.posthoc, ax=ax, alpha=test.alpha,
                                    label_props={"fontsize": 8})
    ax.set_title(f"{title}: mean rank over {test.blocks} blocks (1 = best); Friedman "
                 f"p = {test.p_value:.2g}, Nemenyi CD = {test.cd:.2f}", fontsize=9)
    return fig


# ---------------------------------------------------------------- native vs reference


def _yerr(part: pd.DataFrame, side: str, scale: float) -> np.ndarray | None:
    """(2, n) error-bar lengths from a side's 95% interval (0 where it has none)."""
    if f"{side}_lo" not in part:
        return None
    mean = part[side].to_numpy(float)
    return _err(mean, part[f"{side}_lo"].to_numpy(float),
                part[f"{side}_hi"].to_numpy(float)) * scale


def compare_figure(metrics: pd.DataFrame) -> Figure:
    """One panel per compared figure: native vs reference bars per model, 95% intervals as
    error bars; accuracy (the summarised metrics' ACC) in points."""
    keys = list(dict.fromkeys(metrics["key"]))
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        part = metrics[metrics["key"] == key]
        scale = metric_spec(key).scale if key in {s.key for s in data.summarised()} else 1.0
        x = np.arange(len(part))
        for side, dx, name in (("native", -0.2, "native"), ("reference", 0.2, "anomalib")):
            ax.bar(x + dx, part[side].fillna(0) * scale, 0.4, yerr=_yerr(part, side, scale),
                   capsize=2, label=name)
        ax.set_xticks(x, part["model"], rotation=30)
        ax.set_title(str(part["metric"].iloc[0]), fontsize=9)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig
