"""`--executor slurm`: the cells to run as one Slurm job array, through submitit.

Each cell is one array task running `slurm_task(request, cell)`, i.e. `run_cell_task` (the unit
every executor runs) with the threads Slurm allocated. The launcher waits in a loop without a
deadline that still ends for every job: a job whose result file appears is read; a job that
Slurm reports ended without one (CANCELLED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, PREEMPTED, FAILED,
...) becomes a failed record, `ErrorInfo("Slurm", <state>)`, written to the cell's record file,
and the others go on. A job that neither `squeue` nor `sacct` knows any more is `LOST`.

`<results>/slurm/jobs.json` keeps the job id of every submitted cell (for `nfbench status`, and
so that a re-run waits on a cell's job that is still queued or running instead of submitting
it twice). Slurm's own time limit ends an overrunning cell (TIMEOUT): the cells are not
checkpointable, so submitit's requeue signal is ignored. Each task measures its own inference
cost, alone in its allocation. submitit is optional: `pip install 'nfbench[cluster]'`.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import field
from datetime import datetime
from pathlib import Path

import torch
from filelock import FileLock
from tqdm.auto import tqdm

from nfbench.benchmarks.records.record import (
    CellRecord,
    ErrorInfo,
    RecordError,
    cell_path,
    now,
    read_record,
    write_json_atomic,
)
from nfbench.benchmarks.running.callbacks import Callback
from nfbench.benchmarks.running.cell import PlannedCell, failed_record, open_env, run_cell_task
from nfbench.benchmarks.running.context import CellEnv
from nfbench.benchmarks.running.executors.base import (
    Executor,
    ExecutorConfig,
    ExecutorError,
    register_executor,
)
from nfbench.benchmarks.running.request import RunRequest

INSTALL_HINT = "pip install 'nfbench[cluster]'"
# states after which a job never runs again (anything else: still queued, running or held)
TERMINAL = {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
            "PREEMPTED", "BOOT_FAIL", "DEADLINE", "REVOKED"}
POLL_MIN_S, POLL_MAX_S = 2.0, 30.0  # the wait between polls grows from 2 s to 30 s
RESULT_GRACE_S = 30.0  # a COMPLETED job's result file may lag on a shared file system
LOST_POLLS = 5  # polls in a row in which neither squeue nor sacct knows a job
QUERY_TIMEOUT_S = 60


@dataclasses.dataclass
class SlurmConfig(ExecutorConfig):
    """Per array task; every field is a flag `--slurm.<field>` (also `--slurm-<field>`)."""

    partition: str | None = field(default=None, metadata={"help": "the Slurm partition"})
    gpus: int | None = field(default=None, metadata={
        "help": "GPUs per task (default: 1 with --device cuda, else 0)"})
    cpus: int | None = field(default=None, metadata={"help": "CPUs per task (cluster default)"})
    mem: float | None = field(default=None, metadata={"help": "GB of memory per task"})
    time: int = field(default=240, metadata={"help": "minutes per task"})
    parallelism: int | None = field(default=None, metadata={
        "help": "array tasks at once (submitit's default: 256)"})
    extra: list[str] = field(default_factory=list, metadata={
        "help": "more sbatch options, KEY=VALUE (e.g. qos=high account=x; KEY alone: a flag)",
        "nargs": "+"})

    def memory_limit_gb(self) -> float | None:
        return self.mem


def extra_parameters(items: list[str]) -> dict[str, str | bool]:
    """["qos=high", "exclusive"] -> {"qos": "high", "exclusive": True} (sbatch's long names)."""
    extra: dict[str, str | bool] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not key.strip() or key.strip().startswith("-"):
            raise ExecutorError(f"--slurm.extra '{item}': expected KEY=VALUE (e.g. qos=high)")
        extra[key.strip()] = value.strip() if sep else True
    return extra


def task_gpus(config: SlurmConfig, device: str) -> int:
    if config.gpus is not None:
        return config.gpus
    return 1 if str(device).startswith("cuda") else 0


def executor_parameters(config: SlurmConfig, device: str) -> dict:
    """submitit's AutoExecutor parameters (one task per array element)."""
    params: dict = {"name": "nfbench", "timeout_min": int(config.time), "nodes": 1,
                    "tasks_per_node": 1}
    optional = {"cpus_per_task": config.cpus, "gpus_per_node": task_gpus(config, device) or None,
                "mem_gb": config.mem, "slurm_partition": config.partition,
                "slurm_array_parallelism": config.parallelism,
                "slurm_additional_parameters": extra_parameters(config.extra) or None}
    params.update({k: v for k, v in optional.items() if v is not None})
    return params


def check_config(config: SlurmConfig, workers: int) -> None:
    """Options that cannot work, and a missing submitit or sbatch: one line each."""
    if workers > 1:
        raise ExecutorError("--workers is for the local executor; with slurm use "
                            "--slurm.parallelism")
    for name in ("time", "cpus", "parallelism", "mem"):
        value = getattr(config, name)
        if value is not None and not value > 0:
            raise ExecutorError(f"--slurm.{name} must be positive, not {value}")
    if config.gpus is not None and config.gpus < 0:
        raise ExecutorError(f"--slurm.gpus must be 0 or more, not {config.gpus}")
    extra_parameters(config.extra)
    try:
        importlib.import_module("submitit")
    except ImportError:
        raise ExecutorError(f"--executor slurm needs submitit: {INSTALL_HINT}") from None
    if shutil.which("sbatch") is None:
        raise ExecutorError("--executor slurm: sbatch not found (run on a Slurm login node)")


@register_executor("slurm")
class SlurmExecutor(Executor):
    """One job array; see the module docstring."""

    config_class = SlurmConfig
    config: SlurmConfig

    def check(self, callbacks: Sequence[Callback]) -> None:
        super().check(callbacks)
        check_config(self.config, self.request.workers)

    def environment(self, show_progress: bool) -> CellEnv:
        """For planning only (the cells run in the jobs): a login node without a GPU may plan
        a --device cuda grid (backbone on the CPU, cell ids for cuda)."""
        request = self.request
        if not str(request.device).startswith("cuda") or torch.cuda.is_available():
            return open_env(request, show_progress)
        env = open_env(dataclasses.replace(request, device="cpu"), show_progress)
        return dataclasses.replace(env, device=torch.device(request.device))

    def run(self, cells: list[PlannedCell], env: CellEnv, callbacks: Sequence[Callback],
            show_progress: bool) -> list[CellRecord]:
        return run_slurm(self.request, self.config, cells, env, show_progress)


# ---- the job side -------------------------------------------------------------------------
def slurm_task(request, cell) -> CellRecord:
    """What each array task runs: one cell, with the CPUs Slurm allocated to it. Slurm's time
    limit ends an overrunning cell (TIMEOUT), so submitit's requeue signal is ignored."""
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    cpus = os.environ.get("SLURM_CPUS_PER_TASK")
    if cpus and cpus.isdigit():
        torch.set_num_threads(int(cpus))
    return run_cell_task(request, cell)


def job_request(request):
    """The request as the jobs get it: absolute paths (a job may start elsewhere)."""
    def absolute(path):
        return None if path is None else Path(path).expanduser().resolve()

    return dataclasses.replace(request, results_dir=absolute(request.results_dir),
                               cache_dir=absolute(request.cache_dir),
                               data_root=absolute(request.data_root))


# ---- job ids per cell ---------------------------------------------------------------------
def slurm_dir(results_dir) -> Path:
    return Path(results_dir) / "slurm"


def jobs_path(results_dir) -> Path:
    return slurm_dir(results_dir) / "jobs.json"


def read_jobs(results_dir) -> dict[str, dict]:
    """{cell id: {"job_id", "submitted", model, variant, scenario, strategy, seed, ...}}."""
    path = jobs_path(results_dir)
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def remember_jobs(results_dir, entries: dict[str, dict]) -> None:
    path = jobs_path(results_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.with_suffix(".lock"))):
        jobs = read_jobs(results_dir)
        jobs.update(entries)
        write_json_atomic(path, jobs)


# ---- asking Slurm -------------------------------------------------------------------------
def _expand_ids(job_id: str) -> list[str]:
    """'12_[3-5%2]' -> ['12_3', '12_4', '12_5']; '12_7' and '12' as they are."""
    match = re.fullmatch(r"(\d+)_\[([\d,\-]+)(?:%\d+)?\]", job_id)
    if not match:
        return [job_id]
    ids = []
    for part in match.group(2).split(","):
        lo, _, hi = part.partition("-")
        ids += [f"{match.group(1)}_{i}" for i in range(int(lo), int(hi or lo) + 1)]
    return ids


def _run(command: list[str]) -> str | None:
    """stdout of a Slurm command, or None when it is missing or fails."""
    if shutil.which(command[0]) is None:
        return None
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=QUERY_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def _parse(text: str) -> dict[str, tuple[str, str]]:
    states = {}
    for line in text.splitlines():
        job_id, state, reason = ([*line.strip().split("|"), "", ""])[:3]
        if job_id and "." not in job_id and state:
            for one in _expand_ids(job_id):
                states[one] = (state.split()[0].rstrip("+"), reason)
    return states


def query_states(job_ids) -> tuple[dict[str, tuple[str, str]], bool] | None:
    """({job id: (state, pending reason)}, whether squeue answered) from squeue (live, wins)
    and sacct (accounting, also after squeue forgets a job); None when neither answered."""
    arrays = sorted({j.split("_")[0] for j in job_ids})
    if not arrays:
        return {}, True
    queue = _run(["squeue", "-h", "-r", "-t", "all", "-u", str(os.getuid()),
                  "-o", "%i|%T|%r"])
    accounting = _run(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(arrays)])
    if queue is None and accounting is None:
        return None
    states = _parse(accounting or "")
    states.update(_parse(queue or ""))
    return states, queue is not None


# ---- the launcher -------------------------------------------------------------------------
@dataclasses.dataclass
class _Pending:
    cell: object
    job: object
    submitted: float  # epoch seconds
    ended_at: float | None = None  # monotonic time Slurm first said the job ended
    unseen: int = 0


def _epoch(iso: str | None) -> float:
    try:
        return datetime.fromisoformat(iso).timestamp() if iso else 0.0
    except ValueError:
        return 0.0


def _attach(request, cells: list, folder: Path) -> tuple[dict[str, _Pending], list]:
    """Cells whose job from an earlier launch is still queued or running: wait on it."""
    import submitit

    recorded = read_jobs(request.results_dir)
    known = {c.cell_id: recorded[c.cell_id] for c in cells
             if recorded.get(c.cell_id, {}).get("job_id")}
    answer = query_states([e["job_id"] for e in known.values()]) if known else None
    states = answer[0] if answer else {}
    attached, rest = {}, []
    for cell in cells:
        entry = known.get(cell.cell_id)
        state = states.get(entry["job_id"], ("",))[0] if entry else ""
        if entry and state and state not in TERMINAL:
            job = submitit.SlurmJob(folder=folder, job_id=entry["job_id"])
            attached[cell.cell_id] = _Pending(cell, job, _epoch(entry.get("submitted")))
        else:
            rest.append(cell)
    return attached, rest


def _submit(request: RunRequest, config: SlurmConfig, cells: list, env: CellEnv,
            folder: Path) -> dict[str, _Pending]:
    import submitit

    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    executor.update_parameters(**executor_parameters(config, request.device))
    sent = job_request(request)
    submitted = time.time()
    try:
        jobs = executor.map_array(slurm_task, [sent] * len(cells), cells)
    except submitit.core.utils.FailedJobError as err:
        lines = [line for line in str(err).splitlines() if "error" in line.lower()]
        raise ExecutorError(f"sbatch refused the job array: {(lines or [str(err)])[-1]}") from err
    stamp = now()
    remember_jobs(request.results_dir, {
        cell.cell_id: {"job_id": job.job_id, "submitted": stamp,
                       **cell.spec.identity(env.scenario.name, cell.label)}
        for cell, job in zip(cells, jobs, strict=True)})
    return {c.cell_id: _Pending(c, j, submitted) for c, j in zip(cells, jobs, strict=True)}


def _log_tail(job, lines: int = 20) -> str:
    try:
        text = Path(job.paths.stderr).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _own_record(request, item: _Pending) -> CellRecord | None:
    """The record the job itself wrote (it may end after writing it), if any."""
    path = cell_path(request.results_dir, item.cell.cell_id)
    try:
        if path.is_file() and path.stat().st_mtime >= item.submitted - 1:
            return read_record(path)
    except (OSError, RecordError):
        pass
    return None


def _failed(request, env: CellEnv, item: _Pending, error: ErrorInfo) -> CellRecord:
    own = _own_record(request, item)
    return own if own is not None else failed_record(request, item.cell, env, error)


def _job_error(err: Exception) -> ErrorInfo:
    """submitit's error of a job that raised: the exception's line, and the trace."""
    text = str(err)
    parts = text.split("-" * 22)  # submitit frames the job's traceback with these
    body = parts[1] if len(parts) > 2 else text
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    return ErrorInfo(type(err).__name__, lines[-1] if lines else "", traceback=text[-4000:])


def _from_result(request, env: CellEnv, item: _Pending) -> CellRecord:
    """The record the job returned, or a failure when the job raised."""
    try:
        result = item.job.result()
    except Exception as err:  # the job raised: its trace becomes the failure
        return _failed(request, env, item, _job_error(err))
    if isinstance(result, CellRecord):
        return result
    return _failed(request, env, item, ErrorInfo("SlurmJobError", f"unexpected result {result!r}"))


def _slurm_failure(request, env: CellEnv, item: _Pending, state: str) -> CellRecord:
    detail = f"job {item.job.job_id} ended with Slurm state {state}\n{_log_tail(item.job)}"
    return _failed(request, env, item, ErrorInfo("Slurm", state, traceback=detail))


def _verdict(item: _Pending, answer) -> str | None:
    """None: still waiting; 'result': read the job's result; else the Slurm state it ended in
    ('LOST' when squeue answers and neither it nor sacct has known the job for a while)."""
    if Path(item.job.paths.result_pickle).exists():
        return "result"
    if answer is None:  # no answer from Slurm at all: wait (results still arrive as files)
        return None
    states, queue_answered = answer
    state = states.get(item.job.job_id, ("", ""))[0]
    if not state:
        item.unseen += queue_answered
        return "LOST" if item.unseen >= LOST_POLLS else None
    item.unseen = 0
    if state not in TERMINAL:
        return None
    item.ended_at = item.ended_at or time.monotonic()
    if state == "COMPLETED" and time.monotonic() - item.ended_at < RESULT_GRACE_S:
        return None  # the result file is on its way
    return "result" if Path(item.job.paths.result_pickle).exists() else state


def _wait(request, env: CellEnv, pending: dict[str, _Pending], bar) -> list[CellRecord]:
    """Poll until every job has a record; never longer than its job lives."""
    records, failed, start = [], 0, time.monotonic()
    while pending:
        answer = query_states([item.job.job_id for item in pending.values()])
        for cid, item in list(pending.items()):
            verdict = _verdict(item, answer)
            if verdict is None:
                continue
            record = (_from_result(request, env, item) if verdict == "result"
                      else _slurm_failure(request, env, item, verdict))
            del pending[cid]
            records.append(record)
            failed += not record.ok
            bar.update()
        states = answer[0] if answer else {}
        running = sum(states.get(i.job.job_id, ("",))[0] == "RUNNING" for i in pending.values())
        bar.set_postfix_str(f"failed {failed}, running {running}")
        if pending:
            time.sleep(min(POLL_MAX_S, POLL_MIN_S + (time.monotonic() - start) / 10))
    return records


def run_slurm(request: RunRequest, config: SlurmConfig, cells: list, env: CellEnv,
              show_progress: bool) -> list[CellRecord]:
    """Run `cells` as one Slurm job array (cells whose earlier job still runs are waited on,
    not submitted again); return their records as stored."""
    folder = slurm_dir(request.results_dir)
    folder.mkdir(parents=True, exist_ok=True)
    pending, fresh = _attach(request, cells, folder)
    if fresh:
        pending.update(_submit(request, config, fresh, env, folder))
    if pending and show_progress:
        tqdm.write(f"slurm: {len(fresh)} cells submitted, {len(pending) - len(fresh)} already "
                   f"queued; job ids in {jobs_path(request.results_dir)}")
    bar = tqdm(total=len(pending), desc="cells (slurm)", disable=not show_progress)
    try:
        records = _wait(request, env, pending, bar)
    except KeyboardInterrupt:
        tqdm.write("slurm: the jobs keep running; re-run to wait for them, or `nfbench status`")
        raise
    finally:
        bar.close()
    order = {cell.cell_id: i for i, cell in enumerate(cells)}
    return sorted(records, key=lambda r: order[r.cell_id])
