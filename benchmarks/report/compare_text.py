"""compare.md's text: native vs anomalib reference, side by side, with intervals and the
test of each gap (the leaderboard's formatters, formats.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from nfbench.benchmarks.measuring import statistics as st
from nfbench.benchmarks.measuring.metrics import MetricSpec, metric_spec
from nfbench.benchmarks.report.formats import NA, fmt_p, has_interval

DASH = "—"
COMPARE_INTRO = (
    "Reference entries are `anomalib.<model>`: anomalib's flow, loss and anomaly map on the "
    "same frozen nfbench features (see models/reference/README.md). Training time per epoch "
    "is total training time / (epochs x training phases). Latency and memory cover backbone "
    "+ scoring; memory is the model's own (weights + peak tensors while scoring, from torch's "
    "allocator), at batch 1 and at batch 32; older records' `cpu_peak_rss` is a run's peak "
    "RSS, comparable only within one run. Latency and memory are measured once per model "
    "variant and shared by its seeds' cells, so they carry no interval. "
    "Accuracy (ACC of each summarised metric) is in points (x100)."
)
COMPARE_INTERVALS = (
    "95% intervals: `[a, b]` a bootstrap over test images ({n} resamples of the stored "
    "per-sample scores within each class and label), `s[a, b]` a Student-t interval across "
    "seeds where a side has several. `gap significant`: Welch's t-test across seeds (p < "
    "0.05) where both sides have several seeds, else a paired bootstrap whose 95% interval "
    "of native - reference, on the same resampled test images, excludes 0. \"no\" means "
    "the gap is inside the noise. ‡ in the status: the entry's scores depend on its batch "
    "mates."
)


def _accuracy_spec(key: str) -> MetricSpec | None:
    """The table row of an accuracy figure of compare.md (None for a cost)."""
    try:
        return metric_spec(key)
    except KeyError:
        return None


def _compare_value(value: float | None, key: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return DASH
    if key == "params_trainable":
        return f"{value / 1e6:.2f}M"
    spec = _accuracy_spec(key)
    return spec.format(value) if spec else f"{value:.3g}"


def _with_interval(r: pd.Series, side: str) -> str:
    """"90.0 [85.0, 94.0]" (bootstrap) or "90.0 s[85.0, 94.0]" (seeds) or "90.0"."""
    text = _compare_value(r[side], r["key"])
    kind = r.get(f"{side}_interval") or ""
    lo, hi = r.get(f"{side}_lo", np.nan), r.get(f"{side}_hi", np.nan)
    if text == DASH or not kind or not has_interval(lo, hi):
        return text
    if _accuracy_spec(r["key"]):  # a t-interval over few seeds can pass the metric's range
        lo, hi = max(lo, 0.0), min(hi, 1.0)
    else:  # times, memory and sizes are never negative
        lo = max(lo, 0.0)
    prefix = "s" if kind == "seeds" else ""
    return f"{text} {prefix}[{_compare_value(lo, r['key'])}, {_compare_value(hi, r['key'])}]"


def _gap(r: pd.Series) -> str:
    """Whether native - reference is significant, with the test and its interval or p."""
    spec = _accuracy_spec(r["key"])
    sig = r.get("gap_significant")
    if spec is None:
        return DASH
    if sig is None or (isinstance(sig, float) and np.isnan(sig)):
        return NA
    verdict = "yes" if sig else "no"
    if r.get("gap_test") == "welch":
        return f"{verdict} (Welch {fmt_p(r['gap_p'])})"
    d, s = spec.decimals, spec.scale
    return f"{verdict} (paired bootstrap [{r['gap_lo'] * s:+.{d}f}, {r['gap_hi'] * s:+.{d}f}])"


def compare_markdown(status: pd.DataFrame, metrics: pd.DataFrame,
                     context: dict | None = None, notes: dict[str, str] | None = None) -> str:
    """The compare.md text: context, status per model, the metric table, then the reference
    entries' known deviations from their papers' code (``notes``: model -> sentence)."""
    metrics = metrics.copy()
    for col in ("native_interval", "reference_interval", "gap_significant"):
        if col not in metrics:
            metrics[col] = None
    rows = list(metrics.iterrows())
    shown = pd.DataFrame({
        "model": metrics["model"], "metric": metrics["metric"],
        "native": [_with_interval(r, "native") for _, r in rows],
        "reference": [_with_interval(r, "reference") for _, r in rows],
        "native/reference": [_compare_value(v, "ratio") for v in metrics["native/reference"]],
        "gap significant": [_gap(r) for _, r in rows],
    })
    lines = ["# Native vs anomalib reference", ""]
    if context:
        lines += [", ".join(f"{k}: {v}" for k, v in context.items()), ""]
    lines += [COMPARE_INTRO, "", COMPARE_INTERVALS.format(n=st.N_BOOT), "", "## Status", "",
              status.to_markdown(index=False), "", "## Metrics", "",
              shown.to_markdown(index=False, disable_numparse=True), ""]
    if notes:
        lines += ["## Known deviations of the reference entries", ""]
        lines += [f"- `{model}`: {note}." for model, note in notes.items()] + [""]
    return "\n".join(lines)
