"""IsoFlow's loss: FastFlow's negative log-likelihood, optionally weighted toward its tail.

The tail-aware term is our reading of DeCoFlow's "Tail-Aware Loss" (the abstract names it and
nothing more): the positions of an image whose NLL is in its top `tail_fraction` get weight
1 + tail_weight (weights carry no gradient), so a frozen base's adapters spend their capacity
on the hardest normal regions, which decide a max-pooled image score's false positives.
"""

from __future__ import annotations

import torch


def position_nll(z: torch.Tensor, log_det: torch.Tensor) -> torch.Tensor:
    """0.5 ||z||^2 - log|det| per position (B, H, W); the Gaussian constant is dropped."""
    return 0.5 * torch.sum(z**2, dim=1) - log_det


def tail_weights(nll: torch.Tensor, fraction: float, weight: float) -> torch.Tensor:
    """(B, H, W) weights: 1 + weight on each image's top `fraction` of positions, else 1."""
    flat = nll.detach().flatten(1)
    k = max(1, int(round(fraction * flat.shape[1])))
    cut = flat.topk(k, dim=1).values[:, -1:]
    return (1.0 + weight * (flat >= cut).to(nll.dtype)).view_as(nll)


def isoflow_loss(latents: list[torch.Tensor], log_dets: list[torch.Tensor],
                 tail_fraction: float, tail_weight: float) -> torch.Tensor:
    """Sum over levels of the batch mean of the (weighted) per-position NLL summed over
    positions; tail_weight 0 is FastFlow's loss exactly."""
    loss = latents[0].new_zeros(())
    for z, log_det in zip(latents, log_dets, strict=True):
        nll = position_nll(z, log_det)
        if tail_weight > 0:
            nll = nll * tail_weights(nll, tail_fraction, tail_weight)
        loss = loss + nll.flatten(1).sum(dim=1).mean()
    return loss
