"""The paper's text (``nfbench paper``): booktabs tables, the setup paragraph and main.tex.

Works on the report's frames (``data``, ``intervals``) and typed records; nothing here reads
or writes a file. Every table is built from a long frame of the numbers *as printed* (points,
rounded), which ``commands.paper`` also writes as the table's CSV: the LaTeX cannot say a
number the CSV does not.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from nfbench.benchmarks.measuring import comparisons as cmp
from nfbench.benchmarks.measuring.metrics import metric_spec
from nfbench.benchmarks.records.record import CellRecord
from nfbench.benchmarks.report import data

__all__ = ["cost_frame", "cost_table", "figure", "main_tex", "per_class_frame", "per_class_table",
           "results_frame", "results_table", "setup_tex", "tex"]

DASH = "--"
_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
            "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
            "^": r"\textasciicircum{}"}


def tex(text: object) -> str:
    """``text`` with LaTeX's special characters escaped."""
    return re.sub(r"[\\&%$#_{}~^]", lambda m: _SPECIAL[m.group()], str(text))


def _round(x: float, decimals: int = 1) -> float:
    """Rounded as printed (and never "-0.0")."""
    return round(float(x), decimals) + 0.0 if np.isfinite(x) else np.nan


def _shown(x: float, decimals: int = 1) -> str:
    return DASH if not np.isfinite(x) else f"{x:.{decimals}f}"


def _col(df: pd.DataFrame, name: str) -> np.ndarray:
    return df.get(name, pd.Series(np.nan, index=df.index)).to_numpy(float)


def _kind(r: pd.Series) -> str:
    return data.strategy_kind(str(r["strategy"])) + (" [task-aware]" if r["task_aware"] else "")


# ---------------------------------------------------------------- results per scenario


def results_frame(agg: pd.DataFrame) -> pd.DataFrame:
    """One scenario's rows as printed: model, strategy, acc and half_width of its 95% interval
    (seeds and test images together), fm (points, one decimal) and the verdict mark."""
    spec = metric_spec(data.PRIMARY)
    col = f"{spec.key}_acc"
    acc, lo, hi = (_col(agg, f"{col}__{s}") * spec.scale for s in ("mean", "clo", "chi"))
    fm = _col(agg, f"{spec.key}_fm__mean") * spec.scale
    rows = []
    for i, (_, r) in enumerate(agg.iterrows()):
        below = r.get("vs_best_significant")
        mark = ("best" if r.get("vs_best_is_best") else "?" if below is None or below != below
                else "below" if below else "indistinguishable")
        rows.append({"model": r["variant"], "strategy": _kind(r), "ceiling": not r["is_flow"],
                     "acc": _round(acc[i]), "half_width": _round((hi[i] - lo[i]) / 2),
                     "fm": _round(fm[i]), "mark": mark})
    return pd.DataFrame(rows)


def _acc_cell(r: pd.Series) -> str:
    if not np.isfinite(r["acc"]):
        return DASH
    value = _shown(r["acc"])
    value = rf"\textbf{{{value}}}" if r["mark"] == "best" else value
    sup = {"indistinguishable": r"$^{\approx}$", "?": r"$^{?}$"}.get(r["mark"], "")
    half = rf" $\pm$ {_shown(r['half_width'])}" if np.isfinite(r["half_width"]) else ""
    return value + sup + half


def results_table(frame: pd.DataFrame, scenario: str, label: str) -> str:
    """Models as rows, strategies as columns (ACC $\\pm$ half-width, FM), booktabs."""
    strategies = list(dict.fromkeys(frame["strategy"]))
    models = list(dict.fromkeys(frame["model"]))
    ceiling = dict(zip(frame["model"], frame["ceiling"], strict=False))
    cells: dict[tuple[str, str], str] = {}
    for _, r in frame.iterrows():
        cells[(r["model"], r["strategy"], "ACC")] = _acc_cell(r)
        cells[(r["model"], r["strategy"], "FM")] = _shown(r["fm"])
    columns = pd.MultiIndex.from_tuples([(tex(s), k) for s in strategies for k in ("ACC", "FM")])
    body = [[cells.get((m, s, k), DASH) for s in strategies for k in ("ACC", "FM")]
            for m in models]
    index = [tex(m) + (r"$^{\dagger}$" if ceiling.get(m) else "") for m in models]
    table = pd.DataFrame(body, index=index, columns=columns).to_latex(
        escape=False, multicolumn=True, multicolumn_format="c",
        column_format="l" + "rr" * len(strategies))
    spec = metric_spec(data.PRIMARY)
    caption = (rf"{tex(spec.label)} ACC $\pm$ the half-width of its 95\% interval (seeds and "
               rf"test images together) and FM, in points, on \texttt{{{tex(scenario)}}}. "
               r"Bold: the best flow row; $^{\approx}$: not significantly below it "
               rf"({tex(cmp.PROCEDURE)}); $^{{?}}$: not testable; $^{{\dagger}}$: reference "
               "ceiling (not a flow).")
    return _float("table", caption, label, _fit(table))


# ---------------------------------------------------------------- cost


def cost_frame(agg: pd.DataFrame) -> pd.DataFrame:
    """One scenario's cost as printed: parameters (millions, 2 decimals), latency p50 (ms),
    memory at batch 1 (MB), training hours summed over tasks (3 decimals), device."""
    rows = [{"model": r["variant"], "strategy": _kind(r),
             "params_m": _round(r.get("params_total__mean", np.nan) / 1e6, 2),
             "latency_ms": _round(r.get("latency_ms_p50__mean", np.nan), 1),
             "memory_mb": _round(r.get("memory_mb_batch1__mean", np.nan), 1),
             "train_h": _round(r.get("train_time_s_total__mean", np.nan) / 3600, 3)}
            for _, r in agg.iterrows()]
    return pd.DataFrame(rows)


def cost_table(frame: pd.DataFrame, scenario: str, label: str, device: str) -> str:
    shown = pd.DataFrame({
        "model": [tex(m) for m in frame["model"]], "strategy": [tex(s) for s in frame["strategy"]],
        "params (M)": [_shown(v, 2) for v in frame["params_m"]],
        "latency p50 (ms)": [_shown(v) for v in frame["latency_ms"]],
        "memory, batch 1 (MB)": [_shown(v) for v in frame["memory_mb"]],
        f"training ({tex(device)}-h)": [_shown(v, 3) for v in frame["train_h"]]})
    table = shown.to_latex(index=False, escape=False, column_format="llrrrr")
    caption = (rf"Cost on \texttt{{{tex(scenario)}}}: parameters, latency per image at batch 1, "
               "memory at batch 1 and training time summed over the tasks (seed means).")
    return _float("table", caption, label, _fit(table))


# ---------------------------------------------------------------- per class (appendix)


def per_class_frame(pc: pd.DataFrame, agg: pd.DataFrame, classes: list[str], kind: str
                    ) -> pd.DataFrame:
    """Classes x models of one strategy kind: the final per-class primary figure (points, one
    decimal, seed mean)."""
    spec = metric_spec(data.PRIMARY)
    ok = pc[(pc["status"] == "ok")] if len(pc) else pc
    ok = ok[[data.strategy_kind(str(s)) + (" [task-aware]" if a else "") == kind
             for s, a in zip(ok["strategy"], ok["task_aware"], strict=True)]]
    if ok.empty or spec.key not in ok:
        return pd.DataFrame()
    variants = [v for v in dict.fromkeys(agg["variant"]) if v in set(ok["variant"])]
    present = set(ok["class_name"])
    rows = [c for c in classes if c in present] + sorted(present - set(classes))
    piv = ok.pivot_table(index="class_name", columns="variant", values=spec.key, aggfunc="mean")
    return (piv.reindex(index=rows, columns=variants) * spec.scale).round(1)


def per_class_table(frame: pd.DataFrame, scenario: str, kind: str, label: str) -> str:
    shown = frame.map(_shown)
    shown.index = [tex(c) for c in shown.index]
    shown.columns = [tex(c) for c in shown.columns]
    table = shown.to_latex(escape=False, column_format="l" + "r" * shown.shape[1])
    caption = (rf"{tex(metric_spec(data.PRIMARY).label)} per class after the last task, "
               rf"\texttt{{{tex(scenario)}}}, strategy {tex(kind)} (points, seed mean).")
    return _float("table", caption, label, _fit(table))


# ---------------------------------------------------------------- setup and main


def _fit(tabular: str) -> str:
    """The tabular shrunk to the line width where it is wider, never enlarged."""
    return ("\\sbox0{" + tabular.rstrip() + "}%\n\\ifdim\\wd0>\\linewidth"
            "\\resizebox{\\linewidth}{!}{\\usebox0}\\else\\usebox0\\fi")


def _float(env: str, caption: str, label: str, body: str) -> str:
    return (f"\\begin{{{env}}}[htbp]\n\\centering\n\\caption{{{caption}}}\n"
            f"\\label{{{label}}}\n{body}\n\\end{{{env}}}\n")


def figure(path: str, caption: str, label: str) -> str:
    """A full-width figure float including ``path`` (relative to main.tex)."""
    return _float("figure", caption, label,
                  f"\\includegraphics[width=\\linewidth,height=0.8\\textheight,"
                  f"keepaspectratio]{{{path}}}")


def _join(values: Sequence[object]) -> str:
    items = [tex(v) for v in dict.fromkeys(values) if v not in (None, "")]
    return ", ".join(items) if items else "n/a"


def _training(records: Sequence[CellRecord]) -> str:
    """Epochs, batch size and learning rate per variant, from the resolved configs."""
    parts = []
    for variant in dict.fromkeys(r.variant for r in records):
        cfg = next(r.config for r in records if r.variant == variant)
        keys = [f"{name} {cfg[k]}" for k, name in (("epochs", "epochs"),
                                                  ("batch_size", "batch"), ("lr", "lr"))
                if k in cfg]
        fitted = not keys or cfg.get("epochs") == 0
        parts.append(f"{tex(variant)}: " + ("fitted once, no gradient training" if fitted
                                            else ", ".join(keys)))
    return "; ".join(parts)


def _not_run(records: Sequence[CellRecord]) -> str:
    """Cells that did not run or failed, and why (one sentence each, grouped)."""
    why: dict[str, list[str]] = {}
    for r in records:
        if r.status == "skipped":
            why.setdefault(f"not run: {r.skip_reason or 'no reason recorded'}", []).append(r)
        elif not r.ok:
            err = r.error
            reason = f"failed: {err.type}" + (f" at task {err.task}" if err and err.task
                                              is not None else "") if err else "failed"
            why.setdefault(reason, []).append(r)
    if not why:
        return "Every cell of the grid ran."
    return " ".join(
        f"{len(recs)} cell(s) {tex(reason)} ("
        + _join(f"{r.variant}/{r.strategy}/seed {r.seed}" for r in recs) + ")."
        for reason, recs in why.items())


def setup_tex(records: Sequence[CellRecord]) -> str:
    """The setup paragraph, generated from the records so it cannot disagree with what ran."""
    ran = [r for r in records if r.status != "skipped"] or list(records)
    bb = next((r.backbone for r in ran if r.backbone), {})
    env = [r.environment for r in ran if r.environment]
    rules = _join(k for r in ran for k in (r.thresholds or {}))
    calibration = _join((r.threshold_calibration or {}).get("source") for r in ran)
    taps = ", ".join(f"\\texttt{{{tex(t)}}}" for t in bb.get("layers", [])) or "n/a"
    devices = _join(e.get("device") for e in env)
    hardware = _join(f"{e.get('device')} ({e.get('cpu_count', '?')} CPU cores, torch "
                     f"{e.get('torch')})" for e in env)
    return "\n".join([
        r"\paragraph{Setup.}",
        f"All models share one frozen backbone, \\texttt{{{tex(bb.get('name', 'n/a'))}}} "
        f"(weights {tex(bb.get('weights', 'n/a'))}), tapped at {taps} "
        f"(channels {_join(bb.get('channels', []))}; strides {_join(bb.get('strides', []))}), "
        f"on {tex(bb.get('input_size', 'n/a'))}-pixel inputs.",
        f"Training: {_training(ran)}.",
        f"Seeds: {_join(sorted({r.seed for r in ran}))}. Scenarios: "
        f"{_join(r.scenario for r in ran)} (tasks: "
        + "; ".join(_join(t) for t in next((r.tasks for r in ran if r.tasks), []))
        + f"). Strategies: {_join(data.strategy_kind(r.strategy) for r in ran)} (own: the "
        "model's own continual mechanism). Test time is task-agnostic"
        + (" except for task-aware cells." if any(r.task_aware for r in ran) else "."),
        f"Thresholds: rules {rules}, calibrated on {calibration}. "
        f"Hardware: {hardware} (device {devices}).",
        _not_run(records), ""])


def main_tex(body: Sequence[str], title: str = "Experiments") -> str:
    """A document that compiles on its own and includes every generated part."""
    return "\n".join([
        r"\documentclass[10pt]{article}",
        r"\usepackage[margin=2cm]{geometry}",
        r"\usepackage[T1]{fontenc}",
        r"\usepackage{lmodern}",
        r"\usepackage{booktabs,graphicx,amssymb}",
        r"\begin{document}",
        f"\\section{{{tex(title)}}}",
        r"\input{setup}",
        *body,
        r"\end{document}", ""])
