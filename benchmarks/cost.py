"""Inference cost: batch-1 latency (p50/p95), batch-32 throughput, peak memory.

Timed end to end from an image tensor (backbone + flow), after warm-up, with
torch.cuda.synchronize on GPU. Memory is CUDA max_memory_allocated on GPU and the process's
peak RSS sampled during the measurement on CPU (CPU tensors have no allocator statistics).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import psutil
import torch

from nfbench.models.backbone import Backbone
from nfbench.models.base import FlowADModel

INFERENCE_COST_KEYS = (
    "latency_ms_p50", "latency_ms_p95", "throughput_img_s", "peak_memory_mb", "memory_kind",
)


class _RssSampler:
    """Samples this process's RSS every millisecond in a thread; keeps the peak."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.001)

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def measure_cost(
    backbone: Backbone,
    model: FlowADModel,
    device: torch.device,
    warmup: int = 5,
    iterations: int = 30,
    throughput_batch: int = 32,
    throughput_iterations: int = 3,
) -> dict:
    """Latency and memory of the full inference path (backbone + model scoring)."""
    model.eval()
    size = backbone.input_size
    generator = torch.Generator().manual_seed(0)
    single = torch.rand(1, 3, size, size, generator=generator).to(device)
    batch = torch.rand(throughput_batch, 3, size, size, generator=generator).to(device)

    def infer(x: torch.Tensor) -> None:
        model.score(backbone(x), None)

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    with _RssSampler() as rss:
        for _ in range(warmup):
            infer(single)
        _sync(device)
        latencies = []
        for _ in range(iterations):
            start = time.perf_counter()
            infer(single)
            _sync(device)
            latencies.append((time.perf_counter() - start) * 1000.0)
        infer(batch)  # warm-up at the larger shape
        _sync(device)
        start = time.perf_counter()
        for _ in range(throughput_iterations):
            infer(batch)
        _sync(device)
        throughput = throughput_batch * throughput_iterations / (time.perf_counter() - start)
    if device.type == "cuda":
        peak_mb, kind = torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    else:
        peak_mb, kind = rss.peak / 2**20, "cpu_peak_rss"
    return {
        "latency_ms_p50": float(np.percentile(latencies, 50)),
        "latency_ms_p95": float(np.percentile(latencies, 95)),
        "throughput_img_s": float(throughput),
        "peak_memory_mb": float(peak_mb),
        "memory_kind": kind,
    }
