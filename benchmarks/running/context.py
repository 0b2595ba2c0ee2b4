"""The data a cell runs on, as the protocol, the callbacks and the executors share it.

`CellSpec` names a cell, `CellEnv` is what every cell of a grid shares in one process (data,
features, device) and `CellContext` is a cell in progress as callbacks see it. Data only: the
modules that act on them (protocol, callbacks, cell, executors) all import this one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from nfbench.benchmarks.measuring.evaluate import EvalSet
from nfbench.benchmarks.records.record import CellRecord
from nfbench.benchmarks.running.calibration import DEFAULT_CALIBRATION_SPLIT, CalibrationSplit
from nfbench.benchmarks.running.strategies import Strategy
from nfbench.datasets.base import Dataset, Sample
from nfbench.datasets.scenarios import Scenario
from nfbench.models.base import FlowADModel
from nfbench.models.feature_cache import FeatureCache


@dataclass
class CellSpec:
    """Everything that defines one cell of the grid."""

    model: str
    overrides: dict
    variant: str
    strategy: str  # a registered strategy ("own" for the model's own mechanism)
    seed: int
    strategy_overrides: dict = field(default_factory=dict)
    task_aware: bool = False
    measure_cost: bool = True
    calibration_split: float = DEFAULT_CALIBRATION_SPLIT  # held out for thresholds only
    # cells with the same key train the same model (joint on the same classes, see
    # trained.py): the first trains and saves it, the others load it; None: not shared
    training_key: str | None = None

    def identity(self, scenario: str, label: str) -> dict:
        """The record fields that name the cell."""
        return {"model": self.model, "variant": self.variant, "scenario": scenario,
                "strategy": label, "seed": self.seed, "task_aware": self.task_aware}


@dataclass
class CellEnv:
    """What every cell of a grid shares in one process: data, features, device."""

    dataset: Dataset
    scenario: Scenario
    cache: FeatureCache
    results_dir: Path
    device: torch.device
    show_progress: bool = True
    concurrent_cells: int = 1  # cells running at once in this grid (parallel workers)
    eval_batch_size: int = 32  # images per scoring call (larger keeps a GPU busy)
    autocast: str = "none"  # "bf16": scoring under bfloat16 autocast (opt-in)

    def class_ids(self, samples: list[Sample]) -> torch.Tensor:
        """Global class ids: a class's position in the scenario's class order."""
        index = {name: i for i, name in enumerate(self.scenario.classes)}
        return torch.tensor([index[s.class_name] for s in samples], dtype=torch.long)


@dataclass
class CellContext:
    """A cell in progress, as callbacks see it."""

    spec: CellSpec
    env: CellEnv
    model: FlowADModel
    strategy: Strategy
    test: EvalSet
    test_features: list[torch.Tensor]
    record: CellRecord
    held: list[Sample] = field(default_factory=list)  # training images held after a phase
    calibration: CalibrationSplit | None = None  # None: no split (calibrate on `held`)
    maps: np.ndarray | None = None  # the latest evaluation
    scores: np.ndarray | None = None
    routes: np.ndarray | None = None  # the class each test image was routed to, if any

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Add the block's wall time to record.timings[stage] (seconds)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.env.device.type == "cuda":
                torch.cuda.synchronize(self.env.device)
            timings = self.record.timings
            timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start
