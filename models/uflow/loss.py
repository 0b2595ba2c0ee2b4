"""U-Flow's loss: negative log-likelihood of the latents of every scale, one flow in all."""

from __future__ import annotations

import torch


def uflow_loss(latents: list[torch.Tensor], log_jac_det: torch.Tensor) -> torch.Tensor:
    """mean over the batch of (sum over scales of 0.5 ||z_s||^2 - log|det J|).

    The whole U-shaped flow is one bijection, so a single log-det covers every scale. The
    Gaussian constant is dropped: it does not move gradients.
    """
    sq = sum(0.5 * (z**2).flatten(1).sum(1) for z in latents)
    return torch.mean(sq - log_jac_det)
