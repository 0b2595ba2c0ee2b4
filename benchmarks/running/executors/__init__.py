"""Registered executors: where a grid's cells run (see base.py for the contract).

Adding one: a module here with an `@register_executor("name")` Executor subclass, and its
import below. Its config fields become `--<name>.<field>` flags.
"""

from nfbench.benchmarks.running.executors import local, slurm, workers  # noqa: F401 (registers)
from nfbench.benchmarks.running.executors.base import (
    EXECUTORS,
    Executor,
    ExecutorConfig,
    ExecutorError,
    available_executors,
    build_executor,
    executor_name,
    memory_limits,
    register_executor,
)

__all__ = ["EXECUTORS", "Executor", "ExecutorConfig", "ExecutorError", "available_executors",
           "build_executor", "executor_name", "memory_limits", "register_executor"]
