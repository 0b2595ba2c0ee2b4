"""One typed record per cell: what the protocol writes and every reader (report, plots,
compare, check, status) reads. One versioned `to_json`/`from_json`, one loader.

A record is a cell's identity (model variant x scenario x strategy x seed x settings), its
status (ok, failed or skipped), its R matrices and summaries, thresholds and cost. The JSON on
disk is the source of truth; `from_json` refuses what it cannot read faithfully (a schema it
does not know) instead of guessing, and migrates the older schemas it does know (1: before
the typed record; 2: before routing accuracy).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np

from nfbench.datasets.files import atomic_write

SCHEMA_VERSION = 3
Status = Literal["ok", "failed", "skipped"]


class RecordError(ValueError):
    """A record file that cannot be read faithfully (unknown schema, missing fields)."""


@dataclass
class ErrorInfo:
    """Why a cell failed; task and step where training diverged (NaN/inf)."""

    type: str
    message: str
    task: int | None = None
    step: int | None = None
    traceback: str | None = None


@dataclass
class Cost:
    """Training and inference cost of a cell (inference figures may be shared per variant:
    `cost_measured_in` names the cell that measured them)."""

    train_time_s: list[float] = field(default_factory=list)  # per phase: steps + finish_task
    feature_time_s: float | None = None
    params_total: int | None = None
    params_trainable: list[int] = field(default_factory=list)  # per training phase
    state_mb: list[float] = field(default_factory=list)  # parameters + buffers after each phase
    latency_ms_p50: float | None = None
    latency_ms_q25: float | None = None  # quartiles of the batch-1 timings (IQR = q75 - q25)
    latency_ms_q75: float | None = None
    latency_ms_p95: float | None = None  # None when too few timings for a stable tail
    latency_samples: int | None = None  # batch-1 timings taken (older records: 30, unnamed)
    throughput_img_s: float | None = None
    memory_mb_batch1: float | None = None
    memory_mb_batch32: float | None = None
    memory_kind: str | None = None
    cuda_peak_mb_batch1: float | None = None
    cuda_peak_mb_batch32: float | None = None
    cost_measured_in: str | None = None
    concurrent_cells: int | None = None  # cells running at once while cost was measured
    memory_note: str | None = None
    peak_memory_mb: float | None = None  # schema 1 only: the process's peak RSS

    INFERENCE_KEYS = (
        "latency_ms_p50", "latency_ms_q25", "latency_ms_q75", "latency_ms_p95",
        "latency_samples", "throughput_img_s", "memory_mb_batch1",
        "memory_mb_batch32", "memory_kind", "cuda_peak_mb_batch1", "cuda_peak_mb_batch32",
    )

    def inference(self) -> dict[str, Any]:
        """The inference figures, for cells of the same variant to share."""
        return {k: getattr(self, k) for k in self.INFERENCE_KEYS if getattr(self, k) is not None}


@dataclass
class CellRecord:
    cell_id: str
    status: Status
    model: str
    variant: str
    scenario: str
    strategy: str
    seed: int
    task_aware: bool = False
    created: str = ""  # UTC time the record was made, ISO 8601
    error: ErrorInfo | None = None
    skip_reason: str | None = None
    tasks: list[list[str]] = field(default_factory=list)
    backbone: dict = field(default_factory=dict)
    dataset: dict = field(default_factory=dict)  # {"name": str, "has_masks": bool}
    config: dict = field(default_factory=dict)
    run_settings: dict = field(default_factory=dict)
    environment: dict = field(default_factory=dict)
    batch_dependent_scores: bool = False
    is_flow: bool = True  # False for a non-flow baseline: the leaderboard's reference ceiling
    R: dict[str, list[list[float | None]]] = field(default_factory=dict)  # metric -> T x T
    summary: dict[str, dict[str, float | None]] = field(default_factory=dict)  # acc/fm/bwt
    # classes whose image scores tie (measuring/ties.py): {after_task, task, class, share,
    # value, images}; absent in older records, read as none
    ties: list[dict] = field(default_factory=list)
    # task-agnostic routing (models that route): per evaluation row, accuracy per task on
    # "normal" and on "anomalous" test images, and the task "confusion" (T x T counts); None
    # where the model does not route, the evaluation was task-aware, or the schema predates it
    routing: dict[str, list] | None = None
    per_class: dict[str, dict[str, float | None]] | None = None  # final evaluation
    thresholds: dict[str, dict[str, float | None]] | None = None
    threshold_calibration: dict | None = None
    cost: Cost = field(default_factory=Cost)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage of the cell
    # the cell whose trained model this one evaluates (joint shared across scenarios with the
    # same classes: running/trained.py); None: trained here
    trained_in: str | None = None
    scores: dict[str, str] | None = None  # {"csv": path, "maps": path}, relative to results
    wall_time_s: float | None = None
    schema_version: int = SCHEMA_VERSION

    # ---- reading ------------------------------------------------------------------------
    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def r_matrix(self, metric: str) -> np.ndarray | None:
        """R[t, k] of `metric` as floats (not evaluated = NaN), or None when absent."""
        rows = self.R.get(metric)
        if not rows:
            return None
        return np.array([[np.nan if v is None else float(v) for v in row] for row in rows])

    def summary_value(self, metric: str, key: str) -> float:
        """ACC/FM/BWT of a metric; NaN when undefined or absent."""
        value = (self.summary.get(metric) or {}).get(key)
        return float("nan") if value is None else float(value)

    @property
    def label(self) -> str:
        """"variant / strategy" (+ task-aware mark): how tables and plots name the cell's group."""
        return f"{self.variant} / {self.strategy}" + (" [task-aware]" if self.task_aware else "")

    # ---- (de)serialisation ----------------------------------------------------------------
    def to_json(self) -> dict:
        return _clean(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, data: dict) -> CellRecord:
        version = data.get("schema_version")
        if version == 1:
            data = _migrate_v1(data)
        elif version == 2:  # schema 3 added `routing`; a schema 2 record has none (n/a)
            data = {**data, "schema_version": SCHEMA_VERSION}
        elif version != SCHEMA_VERSION:
            raise RecordError(f"record schema {version!r} is not {SCHEMA_VERSION}: re-run the "
                              "cell with this nfbench, or read it with the version that wrote it")
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RecordError(f"record has fields this schema does not define: {unknown}")
        data["error"] = ErrorInfo(**data["error"]) if data.get("error") else None
        data["cost"] = Cost(**(data.get("cost") or {}))
        try:
            return cls(**data)
        except TypeError as err:
            raise RecordError(f"record is missing fields: {err}") from err

    @classmethod
    def skipped(cls, cell_id: str, reason: str, **identity: Any) -> CellRecord:
        return cls(cell_id=cell_id, status="skipped", skip_reason=reason, created=now(),
                   **identity)

    @classmethod
    def failed(cls, cell_id: str, error: ErrorInfo, **identity: Any) -> CellRecord:
        return cls(cell_id=cell_id, status="failed", error=error, created=now(), **identity)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _migrate_v1(data: dict) -> dict:
    """Schema 1 (before the typed record): same fields less a few; its memory figure was the
    process's peak RSS, kept as `peak_memory_mb` and never shown as model memory."""
    data = {k: v for k, v in data.items() if k != "created" or v}
    data["schema_version"] = SCHEMA_VERSION
    cost = dict(data.get("cost") or {})
    if cost.get("memory_kind") == "cpu_peak_rss":
        cost["memory_kind"] = "cpu_peak_rss (schema 1)"
    data["cost"] = cost
    return data


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become null, numpy scalars and arrays become Python values."""
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


def write_json_atomic(path: Path, data: dict) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(_clean(data), f, indent=1, allow_nan=False)

    atomic_write(path, write)


def write_record(path: Path, record: CellRecord) -> None:
    write_json_atomic(path, record.to_json())


def read_record(path: Path) -> CellRecord:
    """The record stored at `path`; RecordError when it cannot be read faithfully."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise RecordError(f"{path}: unreadable record ({err})") from err
    if isinstance(data, dict) and not data.get("cell_id"):
        data = {**data, "cell_id": Path(path).stem}  # schema 1 kept the id in the file name
    try:
        return CellRecord.from_json(data)
    except RecordError as err:
        raise RecordError(f"{path}: {err}") from err


def cell_path(results_dir: Path, cid: str) -> Path:
    return Path(results_dir) / "cells" / f"{cid}.json"


def load_records(results_dir: Path) -> tuple[list[CellRecord], list[str]]:
    """Every record under results_dir/cells (sorted by file name), and one note per file that
    could not be read (so a report says what it left out instead of dropping it silently)."""
    records, notes = [], []
    for path in sorted((Path(results_dir) / "cells").glob("*.json")):
        try:
            records.append(read_record(path))
        except RecordError as err:
            notes.append(str(err))
    return records, notes
