"""Native vs anomalib reference, side by side: accuracy and speed on the same data and backbone.

`run_compare` runs each native model and its `anomalib.<name>` entry as cells of one grid (one
process, one backbone, one feature cache), then writes reports/compare.md and
reports/plots/compare.png. A model that is not registered (or whose cell failed) keeps a row
that says so; the other side of the pair is still reported.

Every value carries its 95% interval (``statistics.py``): across seeds where a side has several
(``--seeds``), else a bootstrap over test images from the stored per-sample scores. The
native-vs-reference gap in accuracy is tested like the leaderboard's rows: Welch's t-test
across seeds where both sides have several, else a paired bootstrap (both cells recomputed on
the same resampled test images); "no" means the gap is inside the noise.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from nfbench.benchmarks import statistics as st

COMPARED_MODELS: tuple[str, ...] = ("cflow", "fastflow", "csflow", "uflow")
# (record key, table label); the ratio column is native / reference for every metric
METRICS: tuple[tuple[str, str], ...] = (
    ("image_auroc", "image AUROC"),
    ("pixel_auroc", "pixel AUROC"),
    ("train_s_per_epoch", "train s/epoch"),
    ("latency_ms_p50", "latency p50 (ms, batch 1)"),
    ("memory_mb_batch1", "memory (MB, batch 1)"),
    ("memory_mb_batch32", "memory (MB, batch 32)"),
    ("params_trainable", "trainable params"),
)
# accuracy keys -> the bootstrap replicate they are tested with
ACCURACY: dict[str, str] = {"image_auroc": "image_auroc_acc", "pixel_auroc": "pixel_auroc_acc"}


def reference_name(model: str) -> str:
    return f"anomalib.{model}"


def record_metrics(record: dict) -> dict[str, float]:
    """The compared numbers of one finished cell (NaN where the record lacks them)."""
    summary, cost = record.get("summary") or {}, record.get("cost") or {}

    def acc(metric: str) -> float:
        value = (summary.get(metric) or {}).get("acc")
        return float("nan") if value is None else float(value)

    def num(key: str) -> float:
        value = cost.get(key)
        return float("nan") if value is None else float(value)

    times = cost.get("train_time_s") or []
    epochs = (record.get("config") or {}).get("epochs") or 0
    per_epoch = sum(times) / (epochs * len(times)) if times and epochs else float("nan")
    trainable = cost.get("params_trainable") or []
    peak = num("peak_memory_mb")  # older records: one peak over both batch sizes
    b1, b32 = num("memory_mb_batch1"), num("memory_mb_batch32")
    return {
        "image_auroc": acc("image_auroc"),
        "pixel_auroc": acc("pixel_auroc"),
        "train_s_per_epoch": per_epoch,
        "latency_ms_p50": num("latency_ms_p50"),
        "memory_mb_batch1": peak if math.isnan(b1) else b1,
        "memory_mb_batch32": peak if math.isnan(b32) else b32,
        "params_trainable": float(max(trainable)) if trainable else float("nan"),
    }


def _status(name: str, registered: set[str], by_model: dict[str, list[dict]]) -> str:
    """"ok", "ok (2 of 3 seeds; failed: ...)", "failed: ...", "not run" or "not registered"."""
    if name not in registered:
        return "not registered"
    records = by_model.get(name) or []
    if not records:
        return "not run"
    bad = [r for r in records if r.get("status") != "ok"]
    message = next(((r.get("error") or {}).get("message", "") for r in bad), "")
    failed = f"failed: {message.splitlines()[0][:80]}" if message else "failed"
    mark = " ‡" if any(r.get("batch_dependent_scores") for r in records) else ""
    if not bad:
        return "ok" + mark
    if len(bad) == len(records):
        return failed
    return f"ok{mark} ({len(records) - len(bad)} of {len(records)} seeds; {failed})"


def _seed_mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _side_replicates(records: list[dict], reps: dict, sigs: dict, key: str
                     ) -> tuple[np.ndarray | None, tuple | None]:
    """Seed-averaged bootstrap replicates of one side (None unless all seeds share a test set)."""
    ids = [str(r.get("cell_id")) for r in records if str(r.get("cell_id")) in reps]
    arrays = [reps[i][key] for i in ids if key in reps[i]]
    if not arrays or len(arrays) != len(records) or len({sigs[i] for i in ids}) != 1:
        return None, None
    return np.mean(np.stack(arrays), axis=0), sigs[ids[0]]


def compare_tables(
    records: Sequence[dict], models: Sequence[str], registered: set[str],
    results_dir: Path | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(status per model, long metric table: model, metric, native, reference, ratio, intervals).

    ``records`` may hold several seeds per model. native/reference are seed means; ``*_lo`` /
    ``*_hi`` their 95% interval (``*_interval`` says which: "seeds" or "bootstrap"); for the
    accuracy rows, ``gap_test`` / ``gap_lo`` / ``gap_hi`` / ``gap_p`` / ``gap_significant``
    judge native - reference. Bootstrap needs ``results_dir`` (the per-sample scores).
    """
    by_model: dict[str, list[dict]] = {}
    for r in records:
        by_model.setdefault(str(r.get("model")), []).append(r)
    reps: dict = {}
    sigs: dict = {}
    if results_dir is not None:
        from nfbench.benchmarks.report import cell_replicates

        reps, sigs = cell_replicates([dict(r, cell_id=r.get("cell_id") or f"{r.get('model')}#{i}")
                                      for i, r in enumerate(records)], Path(results_dir))
    status_rows, metric_rows = [], []
    for model in models:
        sides = {"native": model, "reference": reference_name(model)}
        status = {side: _status(name, registered, by_model) for side, name in sides.items()}
        status_rows.append({"model": model, **status})
        ok = {side: [r for r in by_model.get(name, []) if r.get("status") == "ok"]
              if status[side].startswith("ok") else [] for side, name in sides.items()}
        values = {side: [record_metrics(r) for r in recs] for side, recs in ok.items()}
        for key, label in METRICS:
            row: dict = {"model": model, "metric": label, "key": key}
            seeds = {side: [v.get(key, float("nan")) for v in values[side]] for side in sides}
            side_reps = {}
            for side in sides:
                mean = _seed_mean(seeds[side])
                lo, hi = st.seed_interval(seeds[side])
                kind = "seeds" if not math.isnan(lo) else ""
                side_reps[side] = (_side_replicates(ok[side], reps, sigs, ACCURACY[key])
                                   if key in ACCURACY else (None, None))
                if not kind and side_reps[side][0] is not None:
                    lo, hi = st.percentile_interval(side_reps[side][0])
                    kind = "bootstrap" if not math.isnan(lo) else ""
                row.update({side: mean, f"{side}_lo": lo, f"{side}_hi": hi, f"{side}_interval": kind})
            native, reference = row["native"], row["reference"]
            row["native/reference"] = native / reference if reference != 0 else float("nan")
            test = None
            if key in ACCURACY:
                (a, sa), (b, sb) = side_reps["native"], side_reps["reference"]
                paired = sa is not None and sa == sb
                test = st.compare(seeds["native"], seeds["reference"], a if paired else None,
                                  b if paired else None)
            row.update({"gap_test": test.method if test else "",
                        "gap_lo": test.low if test else float("nan"),
                        "gap_hi": test.high if test else float("nan"),
                        "gap_p": test.p_value if test else float("nan"),
                        "gap_significant": test.significant if test else None})
            metric_rows.append(row)
    return pd.DataFrame(status_rows), pd.DataFrame(metric_rows)


def _fmt(value: float, key: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if key == "params_trainable":
        return f"{value / 1e6:.2f}M"
    if key in ("image_auroc", "pixel_auroc"):
        return f"{value:.3f}"
    return f"{value:.3g}"


def _with_interval(r: pd.Series, side: str) -> str:
    """"0.900 [0.850, 0.940]" (bootstrap) or "0.900 s[0.850, 0.940]" (seeds) or "0.900"."""
    text = _fmt(r[side], r["key"])
    kind = r.get(f"{side}_interval") or ""
    lo, hi = r.get(f"{side}_lo", float("nan")), r.get(f"{side}_hi", float("nan"))
    if text != "—" and kind and not (math.isnan(lo) or math.isnan(hi)):
        if r["key"] in ACCURACY:  # a t-interval over few seeds can pass the AUROC range
            lo, hi = max(lo, 0.0), min(hi, 1.0)
        prefix = "s" if kind == "seeds" else ""
        text += f" {prefix}[{_fmt(lo, r['key'])}, {_fmt(hi, r['key'])}]"
    return text


def _gap(r: pd.Series) -> str:
    """Whether native - reference is significant, with the test and its interval or p."""
    sig = r.get("gap_significant")
    if r["key"] not in ACCURACY:
        return "—"
    if sig is None or (isinstance(sig, float) and math.isnan(sig)):
        return "n/a"
    verdict = "yes" if sig else "no"
    if r.get("gap_test") == "welch":
        return f"{verdict} (Welch p={r['gap_p']:.2f})"
    return f"{verdict} (paired bootstrap [{r['gap_lo']:+.3f}, {r['gap_hi']:+.3f}])"


def markdown(status: pd.DataFrame, metrics: pd.DataFrame, context: dict | None = None) -> str:
    """The compare.md text: context, status per model, then the metric table."""
    metrics = metrics.copy()
    for col in ("native_interval", "reference_interval", "gap_significant"):
        if col not in metrics:
            metrics[col] = None
    shown = pd.DataFrame({
        "model": metrics["model"], "metric": metrics["metric"],
        "native": [_with_interval(r, "native") for _, r in metrics.iterrows()],
        "reference": [_with_interval(r, "reference") for _, r in metrics.iterrows()],
        "native/reference": [_fmt(v, "ratio") for v in metrics["native/reference"]],
        "gap significant": [_gap(r) for _, r in metrics.iterrows()],
    })
    lines = ["# Native vs anomalib reference", ""]
    if context:
        lines += [", ".join(f"{k}: {v}" for k, v in context.items()), ""]
    lines += [
        "Reference entries are `anomalib.<model>`: anomalib's flow, loss and anomaly map on the "
        "same frozen nfbench features (see models/reference/README.md). Training time per epoch "
        "is total training time / (epochs x training phases). Latency and memory cover backbone "
        "+ scoring, memory at batch 1 and at batch 32 (`cuda_max_allocated` on GPU; on CPU "
        "`cpu_rss_over_backbone`, over a backbone-only baseline in a fresh process; older "
        "records' `cpu_peak_rss` is the run's peak RSS, comparable only within one run).",
        "",
        "95% intervals: `[a, b]` a bootstrap over test images (1000 resamples of the stored "
        "per-sample scores within each class and label), `s[a, b]` a Student-t interval across "
        "seeds where a side has several. `gap significant`: Welch's t-test across seeds (p < "
        "0.05) where both sides have several seeds, else a paired bootstrap whose 95% interval "
        "of native - reference, on the same resampled test images, excludes 0. \"no\" means "
        "the gap is inside the noise. ‡ in the status: the entry's scores depend on its batch "
        "mates.",
        "",
        "## Status",
        "",
        status.to_markdown(index=False),
        "",
        "## Metrics",
        "",
        shown.to_markdown(index=False, disable_numparse=True),
        "",
    ]
    return "\n".join(lines)


def _yerr(part: pd.DataFrame, side: str) -> np.ndarray | None:
    """(2, n) error-bar lengths from a side's 95% interval (0 where it has none)."""
    if f"{side}_lo" not in part:
        return None
    mean = part[side].to_numpy(float)
    err = np.stack([mean - part[f"{side}_lo"].to_numpy(float), part[f"{side}_hi"].to_numpy(float) - mean])
    return np.nan_to_num(err.clip(min=0))


def plot(metrics: pd.DataFrame, path: Path) -> Path:
    """One panel per metric: native vs reference bars per model, 95% intervals as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    keys = [k for k, _ in METRICS]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.2))
    for ax, (key, label) in zip(np.atleast_1d(axes), METRICS, strict=True):
        part = metrics[metrics["key"] == key]
        x = np.arange(len(part))
        ax.bar(x - 0.2, part["native"].fillna(0), 0.4, yerr=_yerr(part, "native"), capsize=2,
               label="native")
        ax.bar(x + 0.2, part["reference"].fillna(0), 0.4, yerr=_yerr(part, "reference"), capsize=2,
               label="anomalib")
        ax.set_xticks(x, part["model"], rotation=30)
        ax.set_title(label, fontsize=9)
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_compare(
    status: pd.DataFrame, metrics: pd.DataFrame, out_dir: Path, context: dict | None = None
) -> Path:
    """Write out_dir/compare.md and out_dir/plots/compare.png; returns the markdown path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "compare.md"
    path.write_text(markdown(status, metrics, context))
    plot(metrics, out_dir / "plots" / "compare.png")
    return path


def run_compare(
    scenario: str = "synthetic",
    strategy: str = "joint",
    out_dir: Path = Path("reports"),
    results_dir: Path = Path("results/compare"),
    models: Sequence[str] = COMPARED_MODELS,
    seed: int = 0,
    input_size: int = 128,
    device: str = "cpu",
    tasks: str | None = None,
    data_root: Path | None = None,
    cache_dir: Path = Path(".cache/nfbench"),
    overrides: dict | None = None,
    show_progress: bool = True,
    seeds: Sequence[int] | None = None,
) -> Path:
    """Run native and reference cells for each model in one grid and write the comparison.

    `overrides` (e.g. {"epochs": 2}) apply to both sides of every pair, for quick runs.
    `seeds` (several per side) replaces `seed`: values become seed means with intervals across
    seeds, and gaps are judged by Welch's t-test instead of the paired bootstrap.
    """
    seed_list = list(seeds) if seeds else [seed]
    from nfbench.benchmarks.runner import RunRequest, run_grid
    from nfbench.models.registry import available_models

    registered = set(available_models())
    names = [n for m in models for n in (m, reference_name(m)) if n in registered]
    records: list[dict] = []
    if names:
        request = RunRequest(
            models=names, strategies=[strategy], seeds=seed_list, scenario=scenario, tasks=tasks,
            data_root=data_root, device=device, input_size=input_size, results_dir=results_dir,
            cache_dir=cache_dir, model_overrides=shared_schedule(models, registered, overrides),
        )
        records = run_grid(request, show_progress=show_progress)
    status, metrics = compare_tables(records, models, registered, results_dir)
    context = {"scenario": scenario, "strategy": strategy,
               "seeds" if len(seed_list) > 1 else "seed": ", ".join(map(str, seed_list)),
               "input size": input_size, "device": device}
    if overrides:
        context["overrides"] = overrides
    return write_compare(status, metrics, out_dir, context)


def shared_schedule(
    models: Sequence[str], registered: set[str], overrides: dict | None
) -> dict[str, dict]:
    """Both sides of a pair train on the same schedule: the native config's epochs and batch
    size (or the overrides), so accuracy differences are not a matter of more steps."""
    from nfbench.models.registry import build_config

    schedule: dict[str, dict] = {}
    for model in models:
        if model not in registered:
            continue
        native = build_config(model)
        shared = {"epochs": native.epochs, "batch_size": native.batch_size, **(overrides or {})}
        for name in (model, reference_name(model)):
            if name in registered:
                schedule[name] = dict(shared)
    return schedule


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `nfbench compare`."""
    parser.add_argument("--scenario", default="synthetic")
    parser.add_argument("--strategy", default="joint")
    parser.add_argument("--models", nargs="+", default=list(COMPARED_MODELS),
                        help="native names; each runs beside anomalib.<name>")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, nargs="+",
                        help="several seeds per side (overrides --seed): intervals across seeds "
                             "and Welch's t-test on the gap")
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tasks")
    parser.add_argument("--data-root", type=Path)
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/nfbench"))
    parser.add_argument("--results", dest="results_dir", type=Path,
                        default=Path("results/compare"))
    parser.add_argument("--out", type=Path, default=Path("reports"))
    parser.add_argument("--epochs", type=int, help="epochs for both sides (default: each config's)")


def main_compare(args: argparse.Namespace) -> int:
    """`nfbench compare`: run the pairs and write reports/compare.md."""
    overrides = {"epochs": args.epochs} if args.epochs else None
    path = run_compare(
        scenario=args.scenario, strategy=args.strategy, out_dir=args.out,
        results_dir=args.results_dir, models=args.models, seed=args.seed,
        input_size=args.input_size, device=args.device, tasks=args.tasks,
        data_root=args.data_root, cache_dir=args.cache_dir, overrides=overrides,
        seeds=getattr(args, "seeds", None),
    )
    print(f"wrote {path}")
    return 0
