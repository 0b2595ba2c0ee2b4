"""Cost: memory comes from torch's allocations, per model, independent of run order."""

from __future__ import annotations

import torch

from nfbench.benchmarks.measuring.cost import (
    THROUGHPUT_BATCH,
    cpu_peak_allocation_mb,
    measure_memory,
)
from nfbench.models.backbone import Backbone
from nfbench.models.registry import create_model


def test_peak_allocation_counts_live_tensors_only():
    def two_live_then_one() -> None:
        a = torch.empty(2**20, dtype=torch.uint8)  # 1 MB
        b = torch.empty(2 * 2**20, dtype=torch.uint8)  # 2 MB while a is alive: peak 3 MB
        del a, b
        c = torch.empty(2**20, dtype=torch.uint8)
        del c

    assert abs(cpu_peak_allocation_mb(two_live_then_one) - 3.0) < 0.01


def test_model_memory_depends_on_the_model_not_on_what_ran_before():
    backbone = Backbone("efficientnet_lite0", input_size=64)
    small = create_model("fastflow", backbone.feature_info, flow_steps=2)
    large = create_model("fastflow", backbone.feature_info, flow_steps=6)
    first = measure_memory(backbone, small, torch.device("cpu"))
    ballast = [torch.ones(2**22) for _ in range(8)]  # 128 MB alive in the process
    again = measure_memory(backbone, small, torch.device("cpu"))
    del ballast
    assert again == first
    bigger = measure_memory(backbone, large, torch.device("cpu"))
    for batch in (1, THROUGHPUT_BATCH):
        assert bigger[f"memory_mb_batch{batch}"] > first[f"memory_mb_batch{batch}"]
    assert first[f"memory_mb_batch{THROUGHPUT_BATCH}"] > first["memory_mb_batch1"]
