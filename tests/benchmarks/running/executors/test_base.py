"""The executor contract: a new executor is one registered class; bad options are one line."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from nfbench.benchmarks.commands.cli import build_parser, request_from_args
from nfbench.benchmarks.running.cell import run_cell_task
from nfbench.benchmarks.running.executors import (
    EXECUTORS,
    Executor,
    ExecutorConfig,
    ExecutorError,
    build_executor,
    executor_name,
    register_executor,
)
from nfbench.benchmarks.running.runner import run_grid


@pytest.fixture
def scratch_registry(monkeypatch):
    monkeypatch.setattr(EXECUTORS, "_entries", dict(EXECUTORS._entries))


def test_an_executor_defined_here_runs_a_grid_with_its_own_options(tiny_request,
                                                                   scratch_registry):
    @dataclass
    class ReversedConfig(ExecutorConfig):
        note: str = field(default="", metadata={"help": "a label it keeps"})

    seen: list[str] = []

    @register_executor("reversed")
    class Reversed(Executor):
        """Runs the cells last to first, in this process."""

        config_class = ReversedConfig

        def run(self, cells, env, callbacks, show_progress):
            seen.append(self.config.note)
            return [run_cell_task(self.request, c, callbacks, env) for c in reversed(cells)]

    request = dataclasses.replace(tiny_request, seeds=[0, 1], executor="reversed",
                                  executor_options={"reversed": {"note": "hello"}})
    records = run_grid(request, show_progress=False)
    assert seen == ["hello"] and [r.seed for r in records] == [0, 1]  # grid order kept
    assert all(r.ok for r in records)
    # its flags are generated like a model's: --reversed.note
    args = build_parser().parse_args(["run", "--model", "fastflow", "--executor", "reversed",
                                      "--reversed.note", "from the cli"])
    assert request_from_args(args).executor_options == {"reversed": {"note": "from the cli"}}


def test_unknown_executors_and_options_are_one_line_errors(tiny_request):
    with pytest.raises(ExecutorError, match="unknown executor 'nowhere' .known: local"):
        build_executor(dataclasses.replace(tiny_request, executor="nowhere"))
    bad = dataclasses.replace(tiny_request, executor="slurm",
                              executor_options={"slurm": {"queue": "x"}})
    with pytest.raises(ExecutorError, match="executor 'slurm' has no option.s.: queue"):
        build_executor(bad)


def test_workers_are_the_local_executor_in_several_processes(tiny_request):
    assert executor_name(tiny_request) == "local"
    assert executor_name(dataclasses.replace(tiny_request, workers=3)) == "workers"
    assert executor_name(dataclasses.replace(tiny_request, executor="slurm", workers=3)) == "slurm"


def test_callbacks_need_an_executor_that_runs_cells_in_this_process(tiny_request):
    from nfbench.benchmarks.running.callbacks import Callback

    workers = build_executor(dataclasses.replace(tiny_request, workers=2))
    with pytest.raises(ExecutorError, match="callbacks need the cells in this process"):
        workers.check([Callback()])
    build_executor(tiny_request).check([Callback()])  # local: fine
