"""`nfbench status --results DIR`: where every cell of a results folder stands.

A cell is ok, failed (with the reason), skipped, or, when it has a Slurm job newer than its
record (`<results>/slurm/jobs.json`), running or pending as `squeue`/`sacct` say; `unknown` when
neither answers. A job that ended without a record (the launcher stopped before it could write
one) is failed with Slurm's state. One table per scenario/model/strategy (or per cell with
`--cells`), the failures with their reasons, and a one-line total.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from nfbench.benchmarks.records.record import CellRecord, load_records
from nfbench.benchmarks.running.executors.slurm import TERMINAL, query_states, read_jobs

STATES = ("ok", "failed", "skipped", "running", "pending", "unknown")
RUNNING = {"RUNNING", "CONFIGURING", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESIZING"}
GROUP = ["scenario", "model", "strategy"]


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", dest="results_dir", type=Path, default=Path("results"))
    parser.add_argument("--cells", action="store_true", help="one row per cell")


def _first_line(text: str | None, width: int = 100) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= width else line[: width - 3] + "..."


def _row(identity: dict, cell_id: str, state: str, detail: str) -> dict:
    return {"scenario": identity.get("scenario", "?"), "model": identity.get("variant", "?"),
            "strategy": identity.get("strategy", "?"), "seed": identity.get("seed", "?"),
            "state": state, "detail": detail, "cell": cell_id}


def record_row(record: CellRecord) -> dict:
    detail = ""
    if record.error is not None:
        detail = _first_line(f"{record.error.type}: {record.error.message}")
    elif record.skip_reason:
        detail = _first_line(record.skip_reason)
    identity = {"scenario": record.scenario, "variant": record.variant,
                "strategy": record.strategy, "seed": record.seed}
    return _row(identity, record.cell_id, record.status, detail)


def job_row(cell_id: str, entry: dict, answer: tuple[str, str] | None) -> dict:
    """A cell known only by its Slurm job (no record newer than the submission)."""
    job = entry.get("job_id", "?")
    if answer is None:
        return _row(entry, cell_id, "unknown", f"job {job}: squeue/sacct do not know it")
    state, reason = answer
    if state in RUNNING:
        return _row(entry, cell_id, "running", f"job {job}")
    if state == "COMPLETED":
        return _row(entry, cell_id, "unknown", f"job {job} COMPLETED but wrote no record")
    if state in TERMINAL:
        return _row(entry, cell_id, "failed",
                    f"Slurm: {state} (job {job}; not recorded: re-run to record or retry it)")
    why = f", {reason}" if reason and reason != "None" else ""
    return _row(entry, cell_id, "pending", f"job {job}: {state}{why}")


def _job_decides(entry: dict, record: CellRecord | None, state: str | None) -> bool:
    """A job submitted after the cell's record (or with none) says where the cell stands,
    unless it has ended and a record exists (then that record is the latest word)."""
    if record is None:
        return True
    return entry.get("submitted", "") > (record.created or "") and state not in TERMINAL


def status_rows(results_dir: Path) -> tuple[list[dict], list[str]]:
    """One row per cell (records, and cells with a Slurm job but no record yet), plus notes
    on record files that could not be read."""
    records, notes = load_records(results_dir)
    by_id = {r.cell_id: r for r in records}
    jobs = {cid: e for cid, e in read_jobs(results_dir).items() if e.get("job_id")}
    newer = {cid: e for cid, e in jobs.items()
             if cid not in by_id or e.get("submitted", "") > (by_id[cid].created or "")}
    answer = query_states([e["job_id"] for e in newer.values()]) if newer else None
    states = answer[0] if answer else {}
    decided = {cid for cid, e in newer.items()
               if _job_decides(e, by_id.get(cid), states.get(e["job_id"], (None,))[0])}
    rows = [record_row(r) for r in records if r.cell_id not in decided]
    rows += [job_row(cid, newer[cid], states.get(newer[cid]["job_id"])) for cid in sorted(decided)]
    return rows, notes


def summary_table(rows: list[dict]) -> pd.DataFrame:
    """Counts per scenario / model / strategy and state."""
    frame = pd.DataFrame(rows)
    counts = pd.crosstab([frame[g] for g in GROUP], frame["state"])
    counts = counts.reindex(columns=list(STATES), fill_value=0)
    counts.insert(0, "cells", counts.sum(axis=1))
    return counts.reset_index()


def total_line(rows: list[dict]) -> str:
    counts = {s: sum(r["state"] == s for r in rows) for s in STATES}
    shown = ", ".join(f"{n} {s}" for s, n in counts.items() if n or s in ("ok", "failed"))
    return f"{len(rows)} cells: {shown}"


def main_status(args: argparse.Namespace) -> int:
    rows, notes = status_rows(args.results_dir)
    if not rows:
        print(f"no cells in {args.results_dir}")
    elif args.cells:
        table = pd.DataFrame(rows).drop(columns="cell").sort_values([*GROUP, "seed"])
        print(table.to_markdown(index=False))
    else:
        print(summary_table(rows).to_markdown(index=False))
        attention = [r for r in rows if r["state"] in ("failed", "unknown")]
        if attention:
            table = pd.DataFrame(attention)[[*GROUP, "seed", "state", "detail"]]
            print("\n" + table.to_markdown(index=False))
    for note in notes:
        print(f"unreadable: {note}")
    print(total_line(rows))
    return 0
