"""Fixed-epoch training on cached features. No early stopping: nothing here sees test data."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from nfbench.models.base import FlowADModel, LossTerms, TrainProgress


class DivergedError(RuntimeError):
    """A NaN/inf loss or gradient: recorded as a failed cell with its task and step."""

    def __init__(self, task: int, step: int, detail: str) -> None:
        super().__init__(f"diverged at task {task + 1}, step {step}: {detail}")
        self.task = task
        self.step = step


@dataclass
class PhaseStats:
    seconds: float
    steps: int
    last_parts: dict[str, float]


def train_phase(
    model: FlowADModel,
    features: list[torch.Tensor],
    class_ids: torch.Tensor,
    task_index: int,
    seed: int,
    device: torch.device,
    global_step: int = 0,
    show_progress: bool = True,
    max_steps: int | None = None,
) -> PhaseStats:
    """Train `model` for config.epochs over (features, class_ids) with Adam, stopping early
    only at `max_steps` optimiser steps (a strategy's cap, never a test-set criterion)."""
    cfg = model.config
    groups = model.param_groups()
    if not groups or max_steps == 0:
        return PhaseStats(0.0, 0, {})
    optimizer = torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    params = [p for g in groups for p in g["params"]]
    clip = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
    generator = torch.Generator().manual_seed(seed * 1000 + task_index)
    n = class_ids.shape[0]
    batch = min(cfg.batch_size, n)
    model.train()
    step, parts = 0, {}
    start = time.perf_counter()
    epochs = tqdm(range(cfg.epochs), desc=f"train task {task_index + 1}", leave=False,
                  disable=not show_progress)
    for epoch in epochs:
        order = torch.randperm(n, generator=generator)
        for lo in range(0, n - batch + 1, batch):  # drop the ragged last batch
            if max_steps is not None and step >= max_steps:
                break
            idx = order[lo : lo + batch]
            feats = [f[idx].to(device, non_blocking=True) for f in features]
            progress = TrainProgress(task_index, epoch, step, global_step + step)
            terms = _optimiser_step(model, optimizer, params, clip, feats,
                                    class_ids[idx].to(device), progress)
            step += 1
            parts = terms.parts
        if parts:
            epochs.set_postfix(loss=f"{terms.total.item():.3g}")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    model.eval()
    return PhaseStats(time.perf_counter() - start, step, parts)


def _optimiser_step(
    model: FlowADModel, optimizer: torch.optim.Optimizer, params: list[torch.Tensor],
    clip: float, features: list[torch.Tensor], class_ids: torch.Tensor, progress: TrainProgress,
) -> LossTerms:
    """One step; a NaN/inf loss or gradient norm is a DivergedError with its task and step."""
    terms = model.training_loss(features, class_ids, progress)
    if not torch.isfinite(terms.total):
        raise DivergedError(progress.task_index, progress.step, f"loss is {terms.total.item()}")
    optimizer.zero_grad(set_to_none=True)
    terms.total.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(params, clip)
    if not torch.isfinite(grad_norm):
        raise DivergedError(progress.task_index, progress.step, "gradient norm is not finite")
    optimizer.step()
    return terms
