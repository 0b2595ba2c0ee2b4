"""The executor contract: where a grid's cells run (this process, worker processes, Slurm).

An executor is registered under a name, has a config dataclass whose fields are generated
CLI flags (`--<executor>.<field>`, as for models and strategies) and three duties:
`check` fails fast before any data are opened, `environment` opens what the launching
process needs to plan the cells, and `run` runs the cells (each through the one unit,
`cell.run_cell_task`) and returns their records as stored. A new executor is one file here
with a registered subclass, plus its import line in `__init__.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from nfbench.benchmarks.records.record import CellRecord
from nfbench.benchmarks.running.callbacks import Callback
from nfbench.benchmarks.running.cell import PlannedCell, open_env
from nfbench.benchmarks.running.context import CellEnv
from nfbench.benchmarks.running.request import RunRequest
from nfbench.models.registry import Registry, config_from_overrides


class ExecutorError(ValueError):
    """An executor that cannot run here (a missing tool, bad options): one line."""


@dataclass
class ExecutorConfig:
    """An executor's own knobs; subclasses add fields (each becomes `--<executor>.<field>`)."""

    def memory_limit_gb(self) -> float | None:
        """The host memory one cell may use under this executor (None: the machine's)."""
        return None


class Executor:
    """Runs planned cells; subclasses say where."""

    name: ClassVar[str] = "base"
    config_class: ClassVar[type[ExecutorConfig]] = ExecutorConfig
    in_process: ClassVar[bool] = False  # callbacks (diagnostics) need the cells here

    def __init__(self, config: ExecutorConfig, request: RunRequest) -> None:
        self.config = config
        self.request = request

    def check(self, callbacks: Sequence[Callback]) -> None:
        """Fail fast, before any data are opened, on an executor that cannot run."""
        if callbacks and not self.in_process:
            raise ExecutorError(f"callbacks need the cells in this process; executor "
                                f"'{self.name}' runs them elsewhere (use one local process)")

    def environment(self, show_progress: bool) -> CellEnv:
        """What the launching process needs to plan the cells (dataset, backbone, cache)."""
        return open_env(self.request, show_progress)

    def run(self, cells: list[PlannedCell], env: CellEnv, callbacks: Sequence[Callback],
            show_progress: bool) -> list[CellRecord]:
        raise NotImplementedError


EXECUTORS: Registry[type[Executor]] = Registry("executor", ExecutorError)


def register_executor(name: str) -> Callable[[type], type]:
    """Class decorator: make an Executor subclass available under `name`."""
    return EXECUTORS.register(name)


def available_executors() -> list[str]:
    return EXECUTORS.names()


def executor_name(request: RunRequest) -> str:
    """The executor a request runs on: `--executor`, where `local` with `--workers N > 1`
    means N worker processes on this machine."""
    if request.executor == "local" and request.workers > 1:
        return "workers"
    return request.executor


def memory_limits(request: RunRequest) -> dict[str, float]:
    """{executor: GB} of every executor whose options set a memory limit per cell (so a plan
    can warn before a grid is sent where a cell would not fit)."""
    limits = {}
    for name, given in request.executor_options.items():
        config = config_from_overrides(EXECUTORS.get(name).config_class, given, "executor",
                                       name, ExecutorError)
        if (limit := config.memory_limit_gb()) is not None:
            limits[name] = limit
    return limits


def build_executor(request: RunRequest) -> Executor:
    """The request's executor with its options (`--<executor>.<field>`) applied."""
    name = executor_name(request)
    executor_class = EXECUTORS.get(name)
    given: dict[str, Any] = request.executor_options.get(request.executor, {})
    config = config_from_overrides(executor_class.config_class, given, "executor",
                                   request.executor, ExecutorError)
    return executor_class(config, request)
