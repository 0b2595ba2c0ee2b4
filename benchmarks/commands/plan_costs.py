"""`nfbench plan`'s unit costs, measured on the device: per model variant a few timed
optimiser steps, one finish_task and a few scoring batches on random features of the
backbone's shapes; the backbone's own time per image; the metrics' time per image. plan.py
scales them by what each cell will do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from nfbench.benchmarks.measuring.cost import (
    LATENCY_BUDGET_S,
    LATENCY_SAMPLES,
    THROUGHPUT_ITERATIONS,
    WARMUP,
)
from nfbench.benchmarks.measuring.evaluate import EvalSet, evaluation_row
from nfbench.benchmarks.running.strategies import DEFAULT_STRATEGY
from nfbench.benchmarks.running.trainer import train_phase
from nfbench.models.backbone import Backbone
from nfbench.models.base import FlowADModel
from nfbench.models.registry import create_model

SCORE_BATCH = 32
# the cost measurement (cost.py): warm-up and up to LATENCY_SAMPLES batch-1 timings (at most
# LATENCY_BUDGET_S), THROUGHPUT_ITERATIONS batch-32 ones, then a memory pass of 2 inferences
# at each batch size under the profiler (counted as 3 each)
COST_INFERENCES = {1: WARMUP + 6, 32: THROUGHPUT_ITERATIONS + 1 + 6}


@dataclass
class UnitCosts:
    """Seconds per unit of work for one model variant on one device."""

    features_per_image: float
    step: float  # one optimiser step at the config's batch size
    finish: tuple[int, float, float]  # finish_task on n images: (n, seconds, growth exponent)
    score_per_image: float
    metrics_per_image: float
    setup: float  # building the model
    inference: dict[int, float]  # backbone + scoring, one call at batch 1 and at batch 32
    gpu_bytes: int = 0  # peak GPU memory of the calibration (0 off a GPU)

    def finish_seconds(self, n: int) -> float:
        """finish_task on n images, from the power law fitted on two sizes (a memory bank's
        coreset grows faster than linearly; a flow's references linearly)."""
        base_n, base_s, exponent = self.finish
        return base_s * (n / base_n) ** exponent

    def inference_cost(self) -> float:
        """Latency and throughput timing plus the memory pass (see cost.py); the batch-1
        timings stop at LATENCY_SAMPLES or LATENCY_BUDGET_S, whichever comes first."""
        timings = min(LATENCY_SAMPLES * self.inference[1], LATENCY_BUDGET_S)
        return timings + sum(n * self.inference[batch] for batch, n in COST_INFERENCES.items())


def _timed(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / repeats


def _random_features(backbone: Backbone, n: int, device: torch.device) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    info = backbone.feature_info
    return [torch.randn(n, c, s, s, generator=g).to(device)
            for c, s in zip(info.channels, info.sizes, strict=True)]


def backbone_seconds_per_image(backbone: Backbone, device: torch.device) -> float:
    images = _images(16, backbone, device)
    with torch.no_grad():
        return _timed(lambda: backbone(images), 2, device) / 16


def metrics_seconds_per_image(size: int, n: int = 16) -> float:
    """Image and pixel metrics of one task of n images (maps of the input size)."""
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 2
    masks = np.zeros((n, size, size), dtype=bool)
    masks[labels == 1, size // 4: size // 2, size // 4: size // 2] = True
    test = EvalSet([], np.zeros(n, int), np.zeros(n, int), labels, np.ones(n, bool), masks)
    maps = rng.random((n, size, size)).astype(np.float16)
    scores = rng.random(n)
    return _timed(lambda: evaluation_row(maps, scores, test, 1, 1), 1, torch.device("cpu")) / n


def calibrate(model_name: str, overrides: dict, backbone: Backbone, device: torch.device,
              features_per_image: float, metrics_per_image: float, steps: int = 3) -> UnitCosts:
    """Time a few steps, one finish_task and a few scoring batches of the model."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    model: FlowADModel = create_model(model_name, backbone.feature_info, **overrides).to(device)
    model.start_task(0, [0], DEFAULT_STRATEGY)
    setup = time.perf_counter() - start
    config = model.config
    batch = config.batch_size
    feats = _random_features(backbone, max(batch * (steps + 1), SCORE_BATCH), device)
    ids = torch.zeros(feats[0].shape[0], dtype=torch.long)
    train_feats = [f[: batch * (steps + 1)].cpu() for f in feats]
    train_ids = ids[: batch * (steps + 1)]
    for warm_up in (True, False):  # the first steps build kernels and optimiser state
        stats = train_phase(model, train_feats, train_ids, 0, 0, device, show_progress=False,
                            max_steps=1 if warm_up else steps)
    step = stats.seconds / max(stats.steps, 1)
    finish = _finish_law(model, feats, device)
    score_feats = [f[:SCORE_BATCH] for f in feats]
    with torch.no_grad():
        score = _timed(lambda: model.score(score_feats, None), 2, device) / SCORE_BATCH
        inference = {b: _timed(lambda b=b: model.score(backbone(_images(b, backbone, device)),
                                                        None), 2, device) for b in (1, 32)}
    gpu = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    return UnitCosts(features_per_image, step, finish, score, metrics_per_image, setup,
                     inference, gpu)


def _finish_law(model: FlowADModel, feats: list[torch.Tensor],
                device: torch.device) -> tuple[int, float, float]:
    """finish_task timed on n and 2n images: (n, seconds, exponent in [1, 2])."""
    n = max(feats[0].shape[0] // 2, 1)
    ids = torch.zeros(2 * n, dtype=torch.long)
    times = [_timed(lambda k=k: model.finish_task([f[:k].cpu() for f in feats], ids[:k]), 1,
                    device) for k in (n, 2 * n)]
    exponent = float(np.clip(np.log2(max(times[1], 1e-9) / max(times[0], 1e-9)), 1.0, 2.0))
    return n, times[0], exponent


def _images(n: int, backbone: Backbone, device: torch.device) -> torch.Tensor:
    return torch.rand(n, 3, backbone.input_size, backbone.input_size).to(device)
