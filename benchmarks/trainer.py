"""Fixed-epoch training on cached features. No early stopping: nothing here sees test data."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from nfbench.models.base import FlowADModel, TrainProgress


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
) -> PhaseStats:
    """Train `model` for config.epochs over (features, class_ids) with Adam."""
    cfg = model.config
    groups = model.param_groups()
    if not groups:
        return PhaseStats(0.0, 0, {})
    optimizer = torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    params = [p for g in groups for p in g["params"]]
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
            idx = order[lo : lo + batch]
            feats = [f[idx].to(device, non_blocking=True) for f in features]
            progress = TrainProgress(task_index, epoch, step, global_step + step)
            terms = model.training_loss(feats, class_ids[idx].to(device), progress)
            if not torch.isfinite(terms.total):
                raise DivergedError(task_index, step, f"loss is {terms.total.item()}")
            optimizer.zero_grad(set_to_none=True)
            terms.total.backward()
            clip = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
            grad_norm = torch.nn.utils.clip_grad_norm_(params, clip)
            if not torch.isfinite(grad_norm):
                raise DivergedError(task_index, step, "gradient norm is not finite")
            optimizer.step()
            step += 1
            parts = terms.parts
        epochs.set_postfix(loss=f"{terms.total.item():.3g}")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    model.eval()
    return PhaseStats(time.perf_counter() - start, step, parts)
