"""Plots for `nfbench diagnose` (matplotlib, Agg). Each returns the path it wrote."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402


def _no_change(ax: plt.Axes, model: str) -> None:
    """A panel whose values are all zero says so instead of drawing an axis around 0."""
    ax.text(0.5, 0.5, f"{model}: no parameter changed\n(every RMS change is 0)", ha="center",
            va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _transitions(ax: plt.Axes, tasks: list[int]) -> None:
    """Integer task transitions on x: "1→2", "2→3", ..."""
    ax.set_xticks(tasks, [f"{c - 1}→{c}" for c in tasks])


def _drift_heatmap(fig: plt.Figure, ax: plt.Axes, sub: pd.DataFrame, model: str) -> None:
    grid = sub.pivot_table(index="group", columns="to_task", values="rms_change")
    im = ax.imshow(np.log10(np.maximum(grid.to_numpy(), 1e-8)), aspect="auto", cmap="magma",
                   vmin=-8)
    ax.set_yticks(range(len(grid.index)), grid.index, fontsize=8)
    ax.set_xticks(range(len(grid.columns)), [f"{c - 1}→{c}" for c in grid.columns])
    ax.set_title(f"{model}: log10 RMS change per group")
    fig.colorbar(im, ax=ax, fraction=0.046)


def _drift_lines(ax: plt.Axes, sub: pd.DataFrame) -> None:
    for group, rows in sub.groupby("group"):
        ax.plot(rows["to_task"], rows["rms_change"], marker="o", label=group)
    _transitions(ax, sorted(int(t) for t in sub["to_task"].unique()))
    ax.set_xlabel("task (change from the previous one)")
    ax.set_ylabel("RMS change of the group's parameters")
    ax.set_yscale("symlog", linthresh=1e-6)
    ax.set_ylim(bottom=0)  # an RMS change is never negative
    ax.legend(fontsize=7, ncol=2)


def drift_figure(table: pd.DataFrame) -> plt.Figure:
    """Heat map (group x transition) and lines per model; a model whose parameters never
    moved (e.g. a frozen flow) gets one sentence in both panels instead."""
    models = list(dict.fromkeys(table["model"]))
    fig, axes = plt.subplots(2, len(models), figsize=(5.5 * len(models), 8), squeeze=False)
    for col, model in enumerate(models):
        sub = table[table.model == model]
        if not (sub["rms_change"] != 0).any():
            _no_change(axes[0, col], model)
            _no_change(axes[1, col], model)
            continue
        _drift_heatmap(fig, axes[0, col], sub, model)
        _drift_lines(axes[1, col], sub)
    fig.tight_layout()
    return fig


def plot_drift(table: pd.DataFrame, path: Path) -> Path:
    """Heat map (group x transition) and lines per model, written to ``path``."""
    fig = drift_figure(table)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_entropy(table: pd.DataFrame, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for (model, samples), rows in table.groupby(["model", "samples"]):
        style = "-" if samples == "normal" else "--"
        ax.plot(rows["after_task"], rows["delta_H"], style, marker="o", label=f"{model} {samples}")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("after task")
    ax.set_ylabel("ΔH(p(y|x)) on old tasks (nats)")
    ax.set_title("Entropy change of the class posterior")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_ablation(table: pd.DataFrame, path: Path) -> Path:
    ok = table[table.status == "ok"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(len(ok))
    axes[0].bar(x - 0.2, 100 * ok["acc"], 0.4, label="ACC")
    axes[0].bar(x + 0.2, 100 * ok["fm"], 0.4, label="FM")
    axes[0].set_ylabel("image AUROC points")
    axes[1].bar(x - 0.2, ok["delta_H_normal"], 0.4, label="ΔH normal")
    axes[1].bar(x + 0.2, ok["delta_H_anomalous"], 0.4, label="ΔH anomalous")
    axes[1].axhline(0, color="grey", lw=0.8)
    for ax in axes:
        ax.set_xticks(x, ok["setting"], rotation=20, fontsize=8)
        ax.legend(fontsize=8)
    fig.suptitle(f"{table['model'].iloc[0]} freeze ablation (after task 1)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_tsne(model: str, first: np.ndarray, last: np.ndarray, classes: np.ndarray,
              labels: np.ndarray, path: Path, csv_path: Path) -> Path:
    """t-SNE of per-image latents after the first and the last task, coloured by class."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    rows = []
    names = list(dict.fromkeys(classes))
    colours = plt.get_cmap("tab10")
    for ax, (when, latents) in zip(axes, (("first task", first), ("last task", last)),
                                   strict=True):
        perplexity = min(30.0, max(2.0, (len(latents) - 1) / 3))
        xy = TSNE(n_components=2, perplexity=perplexity, init="pca",
                  random_state=0).fit_transform(latents)
        for i, name in enumerate(names):
            for label, marker in ((0, "o"), (1, "x")):
                sel = (classes == name) & (labels == label)
                ax.scatter(xy[sel, 0], xy[sel, 1], s=14, marker=marker, color=colours(i % 10),
                           label=name if label == 0 else None)
        ax.set_title(f"{model}: after the {when}")
        rows += [{"after": when, "class": c, "label": int(lbl), "x": float(p[0]),
                  "y": float(p[1])} for c, lbl, p in zip(classes, labels, xy, strict=True)]
    axes[0].legend(fontsize=8, title="class (x = anomalous)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    pd.DataFrame(rows).to_csv(csv_path, index=False)
    return path
