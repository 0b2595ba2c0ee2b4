"""workers: the cells in N spawned processes on this machine (`--workers N`).

Cost with workers: each worker measures inference cost once per model variant and strategy,
while other cells run beside it; the record says how many (`cost.concurrent_cells`), and the
leaderboard flags it. For latencies of a quiet machine, run with one worker (the default).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

import torch
from tqdm.auto import tqdm

from nfbench.benchmarks.records.record import CellRecord, ErrorInfo
from nfbench.benchmarks.running.callbacks import Callback
from nfbench.benchmarks.running.cell import PlannedCell, failed_record, run_cell_task
from nfbench.benchmarks.running.context import CellEnv
from nfbench.benchmarks.running.executors.base import Executor, register_executor
from nfbench.benchmarks.running.request import RunRequest


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


@register_executor("workers")
class WorkersExecutor(Executor):
    """Cells in `--workers N` spawned processes, each with a share of the cores (and of the
    GPUs, round robin); progress shows cells done and failures so far. The features the grid
    needs are computed once here first, so the workers only read the cache."""

    def run(self, cells: list[PlannedCell], env: CellEnv, callbacks: Sequence[Callback],
            show_progress: bool) -> list[CellRecord]:
        warm_cache(env)
        return run_workers(self.request, cells, env, self.request.workers, show_progress)


def run_workers(request: RunRequest, cells: list[PlannedCell], env: CellEnv, workers: int,
                show_progress: bool) -> list[CellRecord]:
    """The cells in a pool of `workers` spawned processes; a dead worker's cell is a failure."""
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


def _result_or_failure(result: Callable[[], CellRecord], cell: PlannedCell, env: CellEnv,
                       request: RunRequest) -> CellRecord:
    """The worker's record, or a failed record when the worker process died."""
    try:
        return result()
    except BrokenProcessPool as err:
        return failed_record(request, cell, env,
                             ErrorInfo("WorkerDied", f"the worker process died: {err}"))


def warm_cache(env: CellEnv) -> None:
    """Compute every feature the grid needs once, here, before processes share the cache."""
    samples = [s for name in env.scenario.classes
               for s in (*env.dataset[name].train, *env.dataset[name].test)]
    env.cache.features(samples, desc="features")
