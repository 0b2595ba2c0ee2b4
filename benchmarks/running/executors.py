"""Where cells run: in this process, in N spawned worker processes, or as a Slurm job array.

Every executor runs the same picklable unit, `run_cell_task(request, cell)`: it opens the grid's
environment once per process (dataset, backbone, feature cache), runs the cell, writes its
record atomically and returns it. So a record is the same whichever executor ran it, and a
re-run skips whatever any executor finished.

Cost with workers: each worker measures inference cost once per model variant and strategy,
while other cells run beside it; the record says how many (`cost.concurrent_cells`), and the
leaderboard flags it. For latencies of a quiet machine, run with one worker (the default).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

import torch
from tqdm.auto import tqdm

from nfbench.benchmarks.records.record import (
    CellRecord,
    ErrorInfo,
    cell_path,
    read_record,
    write_record,
)
from nfbench.benchmarks.running.callbacks import (
    Callback,
    CellEnv,
    InferenceCost,
    Progress,
    Thresholds,
)

_ENVS: dict[str, CellEnv] = {}  # per process: the environment of each grid it serves
_COSTS: dict[str, InferenceCost] = {}  # per process and grid: cost measured once per variant


def grid_cost(request) -> InferenceCost:
    """The grid's inference-cost memo in this process (one per grid: a figure measured for
    another grid, e.g. on other data or settings, is never reused)."""
    return _COSTS.setdefault(request_key(request), InferenceCost())


def request_key(request) -> str:
    return repr(dataclasses.astuple(request))


def process_env(request, show_progress: bool = False) -> CellEnv:
    """The grid's environment in this process, opened once (the data were validated by the
    process that planned the grid)."""
    from nfbench.benchmarks.running.runner import open_env

    key = request_key(request)
    if key not in _ENVS:
        _ENVS[key] = open_env(request, show_progress, validate=False)
    return _ENVS[key]


def run_cell_task(request, cell, callbacks: Sequence[Callback] = (),
                  env: CellEnv | None = None, bar=None) -> CellRecord:
    """Run one planned cell, write its record, return it as stored (NaN -> null)."""
    from nfbench.benchmarks.running.runner import execute_cell

    env = env or process_env(request)
    progress = [Progress(bar)] if bar is not None else []
    cost = grid_cost(request)
    record = execute_cell(cell, env, [*progress, Thresholds(), cost, *callbacks])
    path = cell_path(request.results_dir, cell.cell_id)
    write_record(path, record)
    stored = read_record(path)
    cost.remember(stored)
    return stored


def remember_cost(request, record: CellRecord) -> None:
    grid_cost(request).remember(record)


def run_local(request, cells: list, env: CellEnv, callbacks: Sequence[Callback],
              show_progress: bool) -> list[CellRecord]:
    """One cell after another in this process."""
    records = []
    bar = tqdm(cells, desc="cells", disable=not show_progress)
    for cell in bar:
        records.append(run_cell_task(request, cell, callbacks, env, bar))
    return records


def _init_worker(threads: int, gpus: list[str], counter) -> None:
    """Pin the worker to a share of the cores and, with GPUs, to one of them (round robin;
    several workers may share a GPU)."""
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    if gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


def visible_gpus() -> list[str]:
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g for g in listed.split(",") if g.strip()]
    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def run_workers(request, cells: list, env: CellEnv, workers: int,
                show_progress: bool) -> list[CellRecord]:
    """Cells in `workers` spawned processes, each with a share of the cores (and of the GPUs);
    progress shows cells done and failures so far."""
    gpus = visible_gpus() if env.device.type == "cuda" else []
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    counter = context.Value("i", 0)
    bar = tqdm(total=len(cells), desc=f"cells ({workers} workers)", disable=not show_progress)
    records, failed = [], 0
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                             initargs=(threads, gpus, counter)) as pool:
        futures = {pool.submit(run_cell_task, request, cell): cell for cell in cells}
        for future in as_completed(futures):
            record = _result_or_failure(future.result, futures[future], env, request)
            failed += not record.ok
            records.append(record)
            bar.update()
            bar.set_postfix_str(f"failed {failed}")
    bar.close()
    return records


def _result_or_failure(result: Callable[[], CellRecord], cell, env: CellEnv,
                       request) -> CellRecord:
    """The worker's record, or a failed record when the worker process died."""
    try:
        return result()
    except BrokenProcessPool as err:
        error = ErrorInfo("WorkerDied", f"the worker process died: {err}")
        record = CellRecord.failed(cell.cell_id, error,
                                   **cell.spec.identity(env.scenario.name, cell.label))
        write_record(cell_path(request.results_dir, cell.cell_id), record)
        return record
