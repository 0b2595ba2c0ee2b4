"""MSFlow's loss: negative log-likelihood of all scales' latents after the fusion flow."""

from __future__ import annotations

import math

import torch


def msflow_loss(latents: list[torch.Tensor], log_jac_det: torch.Tensor) -> torch.Tensor:
    """mean over the batch of (sum over scales of 0.5 ||z||^2 - log|det J|), as the official
    code (not divided by the dimension count). The Gaussian constant is dropped: it does not
    move gradients. log_jac_det is per sample (parallel flows + fusion flow)."""
    sq = sum(0.5 * (z**2).flatten(1).sum(1) for z in latents)
    return torch.mean(sq - log_jac_det)


def n_dims(latents: list[torch.Tensor]) -> int:
    """Dimensions of one sample across all scales (for a per-dimension loss in the logs)."""
    return sum(math.prod(z.shape[1:]) for z in latents)
