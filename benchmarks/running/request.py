"""What `nfbench run` was asked to do, after grid files and flags are merged: data only.

Every executor, the cell unit and the runner read it; nothing in it names an executor,
strategy or model (their own settings travel as per-name option tables)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nfbench.benchmarks.running.calibration import DEFAULT_CALIBRATION_SPLIT

# a model may set its own backbone (paper presets): these fields, per model
BACKBONE_FIELDS = ("backbone", "backbone_layers", "backbone_weights", "input_size")


@dataclass
class RunRequest:
    """A grid: models x strategies x seeds on one scenario (or a list of scenarios)."""

    models: list[str]
    strategies: list[str]
    seeds: list[int]
    scenario: str | list[str] = "synthetic"  # a list (grid files): one sub-grid per scenario
    tasks: str | None = None
    data_root: Path | None = None
    device: str = "cpu"
    task_aware: bool = False
    backbone: str = "efficientnet_lite0"
    backbone_layers: list[str] | None = None
    backbone_weights: str = "default"
    input_size: int = 128
    results_dir: Path = Path("results")
    cache_dir: Path = Path(".cache/nfbench")
    model_overrides: dict[str, dict] = field(default_factory=dict)
    strategy_overrides: dict[str, dict] = field(default_factory=dict)
    # a model's own backbone settings (backbone, backbone_layers, backbone_weights, input_size)
    model_backbones: dict[str, dict] = field(default_factory=dict)
    measure_cost: bool = True
    retry_failed: bool = False
    workers: int = 1  # cells in parallel processes (several per GPU allowed)
    eval_batch_size: int = 32  # images per scoring call; scores never depend on it
    feature_store: str = "auto"  # auto|memory|disk|recompute (models/feature_cache.py)
    autocast: str = "none"  # "bf16": score under bfloat16 autocast (GPU speed; opt-in)
    calibration_split: float = DEFAULT_CALIBRATION_SPLIT  # training normals kept for thresholds
    executor: str = "local"  # a registered executor (running/executors/): local, slurm
    # each executor's own options, by its name (`--slurm.mem 32` -> {"slurm": {"mem": 32}})
    executor_options: dict[str, dict] = field(default_factory=dict)
