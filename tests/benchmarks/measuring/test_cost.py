"""Cost: memory comes from torch's allocations, per model, independent of run order; latency
takes enough timings for a stable p95, within a time budget (on a fake clock: nothing here
times real code)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nfbench.benchmarks.measuring import cost
from nfbench.benchmarks.measuring.cost import (
    LATENCY_SAMPLES,
    MIN_TAIL_SAMPLES,
    THROUGHPUT_BATCH,
    cpu_peak_allocation_mb,
    latency_samples_ms,
    latency_summary,
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


class _FakeClock:
    """time.perf_counter for cost.py, advanced only by the fake inference."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def inference(self, seconds: float):
        def infer() -> None:
            self.now += seconds
        return infer


@pytest.fixture
def clock(monkeypatch) -> _FakeClock:
    fake = _FakeClock()
    monkeypatch.setattr(cost.time, "perf_counter", fake)
    return fake


def test_a_fast_model_gets_every_timing_and_a_p95(clock):
    timings = latency_samples_ms(clock.inference(0.004), torch.device("cpu"))
    assert len(timings) == LATENCY_SAMPLES >= MIN_TAIL_SAMPLES
    assert timings == pytest.approx([4.0] * LATENCY_SAMPLES)
    summary = latency_summary(list(range(1, 201)))  # 1..200 ms
    assert summary == {"latency_ms_p50": 100.5, "latency_ms_q25": 50.75,
                       "latency_ms_q75": 150.25, "latency_ms_p95": pytest.approx(190.05),
                       "latency_samples": 200}


def test_a_slow_model_stops_at_the_budget_and_gets_p50_with_its_iqr_only(clock):
    timings = latency_samples_ms(clock.inference(1.5), torch.device("cpu"), budget_s=30.0)
    assert len(timings) == 20  # 30 s of 1.5 s inferences
    summary = latency_summary([float(t) for t in np.arange(1, 21)])
    assert summary["latency_ms_p95"] is None and summary["latency_samples"] == 20
    assert (summary["latency_ms_q25"], summary["latency_ms_p50"],
            summary["latency_ms_q75"]) == (5.75, 10.5, 15.25)
    assert len(latency_samples_ms(clock.inference(60.0), torch.device("cpu"))) == 1
