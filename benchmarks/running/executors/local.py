"""local: one cell after another in this process (callbacks such as diagnostics see them)."""

from __future__ import annotations

from collections.abc import Sequence

from tqdm.auto import tqdm

from nfbench.benchmarks.records.record import CellRecord
from nfbench.benchmarks.running.callbacks import Callback
from nfbench.benchmarks.running.cell import PlannedCell, run_cell_task
from nfbench.benchmarks.running.context import CellEnv
from nfbench.benchmarks.running.executors.base import Executor, register_executor


@register_executor("local")
class LocalExecutor(Executor):
    in_process = True

    def run(self, cells: list[PlannedCell], env: CellEnv, callbacks: Sequence[Callback],
            show_progress: bool) -> list[CellRecord]:
        records = []
        bar = tqdm(cells, desc="cells", disable=not show_progress)
        for cell in bar:
            records.append(run_cell_task(self.request, cell, callbacks, env, bar))
        return records
