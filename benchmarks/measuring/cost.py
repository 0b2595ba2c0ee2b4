"""Inference cost: batch-1 latency (p50 with its quartiles, p95), batch-32 throughput, memory
at batch 1 and 32.

Timed end to end from an image tensor (backbone + flow), after warm-up, with
torch.cuda.synchronize on GPU. Nothing samples memory while latency is timed: memory is
measured afterwards, in its own pass.

Latency takes up to ``LATENCY_SAMPLES`` batch-1 timings within ``LATENCY_BUDGET_S``. A p95 of
30 timings is about the second-largest one, so it moved with every stray slow call; of 200,
about 10 timings lie above it. A model too slow to give ``MIN_TAIL_SAMPLES`` timings within the
budget gets no p95 (None: "n/a" in tables) rather than an unstable one; its p50 with the
interquartile range (q25, q75), stable from few timings, is always recorded, with the count.

Memory is the model's own, over the backbone-only path, at batch 1 and at batch 32 apart: its
weights (parameters and buffers) plus the peak of the tensors allocated while it scores the
backbone's features. On CPU the peak comes from torch's allocation events (the profiler's
memory records), on GPU from torch.cuda.max_memory_allocated; both count tensors only, so the
figure depends on the model alone, not on what ran earlier in the process (the process's RSS
did: it grew with run order). On GPU the whole path's max_memory_allocated (backbone and
weights included) is recorded too.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from nfbench.models.backbone import Backbone
from nfbench.models.base import FlowADModel

THROUGHPUT_BATCH = 32
MB = 2**20
WARMUP = 5  # untimed batch-1 inferences first (lazy buffers, allocator, caches)
LATENCY_SAMPLES = 200  # batch-1 timings at most
LATENCY_BUDGET_S = 30.0  # ... and timings stop once this is spent (slow models)
MIN_TAIL_SAMPLES = 100  # fewer timings than this give no p95
THROUGHPUT_ITERATIONS = 3


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _images(batch: int, size: int, device: torch.device) -> torch.Tensor:
    generator = torch.Generator().manual_seed(batch)
    return torch.rand(batch, 3, size, size, generator=generator).to(device)


def latency_samples_ms(infer: Callable[[], object], device: torch.device,
                       samples: int = LATENCY_SAMPLES,
                       budget_s: float = LATENCY_BUDGET_S) -> list[float]:
    """Batch-1 timings (ms) of ``infer``: ``samples`` of them, fewer when ``budget_s`` is
    spent first (at least one)."""
    timings: list[float] = []
    started = time.perf_counter()
    while len(timings) < samples and (not timings or time.perf_counter() - started < budget_s):
        start = time.perf_counter()
        infer()
        _sync(device)
        timings.append((time.perf_counter() - start) * 1000.0)
    return timings


def latency_summary(timings_ms: list[float]) -> dict:
    """p50 with its quartiles and the count, always; p95 only from >= MIN_TAIL_SAMPLES."""
    q25, p50, q75, p95 = np.percentile(timings_ms, [25, 50, 75, 95])
    return {"latency_ms_p50": float(p50), "latency_ms_q25": float(q25),
            "latency_ms_q75": float(q75),
            "latency_ms_p95": float(p95) if len(timings_ms) >= MIN_TAIL_SAMPLES else None,
            "latency_samples": len(timings_ms)}


@torch.no_grad()
def time_inference(backbone: Backbone, model: FlowADModel, device: torch.device) -> dict:
    """Latency at batch 1 (ms, ``latency_summary``) and throughput at batch 32 (img/s)."""
    model.eval()
    single = _images(1, backbone.input_size, device)
    batch = _images(THROUGHPUT_BATCH, backbone.input_size, device)

    def infer(x: torch.Tensor = single) -> None:
        model.score(backbone(x), None)

    for _ in range(WARMUP):
        infer()
    _sync(device)
    latency = latency_summary(latency_samples_ms(infer, device))
    infer(batch)  # warm-up at the larger shape
    _sync(device)
    start = time.perf_counter()
    for _ in range(THROUGHPUT_ITERATIONS):
        infer(batch)
    _sync(device)
    throughput = THROUGHPUT_BATCH * THROUGHPUT_ITERATIONS / (time.perf_counter() - start)
    return {**latency, "throughput_img_s": float(throughput)}


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence the profiler's C++ start/stop lines (they bypass Python's sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def cpu_peak_allocation_mb(fn: Callable[[], object]) -> float:
    """Peak of live tensor bytes allocated by `fn` on the CPU (torch's allocation events)."""
    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    live = np.cumsum([0, *(e.nbytes() for e in events)])
    return float(live.max()) / MB


def cuda_peak_allocation_mb(fn: Callable[[], object], device: torch.device) -> tuple[float, float]:
    """(peak tensor bytes allocated by `fn` over what was allocated before, whole peak)."""
    _sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    _sync(device)
    peak = torch.cuda.max_memory_allocated(device)
    return (peak - before) / MB, peak / MB


def weights_mb(model: torch.nn.Module) -> float:
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors) / MB


@torch.no_grad()
def measure_memory(backbone: Backbone, model: FlowADModel, device: torch.device) -> dict:
    """The model's memory at batch 1 and 32: weights + peak allocation while scoring."""
    model.eval()
    memory: dict = {"memory_kind": f"{device.type}_torch_alloc"}
    for batch in (1, THROUGHPUT_BATCH):
        features = backbone(_images(batch, backbone.input_size, device))
        model.score(features, None)  # warm-up: lazily built buffers are not per-call memory

        def score(feats: list[torch.Tensor] = features) -> None:
            model.score(feats, None)

        if device.type == "cuda":
            peak, whole = cuda_peak_allocation_mb(score, device)
            memory[f"cuda_peak_mb_batch{batch}"] = whole
        else:
            peak = cpu_peak_allocation_mb(score)
        memory[f"memory_mb_batch{batch}"] = weights_mb(model) + peak
    return memory


def measure_cost(backbone: Backbone, model: FlowADModel, device: torch.device) -> dict:
    """Latency, throughput and memory of the full inference path (backbone + model scoring)."""
    return {**time_inference(backbone, model, device), **measure_memory(backbone, model, device)}
