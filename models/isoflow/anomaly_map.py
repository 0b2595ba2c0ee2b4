"""IsoFlow's anomaly map (FastFlow's, one place: nfbench.models.fastflow) and its routing
score: the per-dimension log-likelihood of an image under one task's adapters."""

from __future__ import annotations

import math

import torch

from nfbench.models.isoflow.loss import position_nll


def image_log_likelihood(latents: list[torch.Tensor], log_dets: list[torch.Tensor]
                         ) -> torch.Tensor:
    """(B,) mean over levels of log p(x) per dimension (positions x channels), so every level
    counts alike whatever its size; the task whose adapters make it highest is the route."""
    per_level = []
    for z, log_det in zip(latents, log_dets, strict=True):
        nll = position_nll(z, log_det) + 0.5 * z.shape[1] * math.log(2 * math.pi)
        per_level.append(-nll.flatten(1).mean(dim=1) / z.shape[1])
    return torch.stack(per_level).mean(dim=0)
