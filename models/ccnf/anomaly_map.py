"""CCNF's anomaly scoring (seed 001 §3.5): S = -log p(x|y_hat) + lambda_H * H(p(y|x)).

log_probs is (K, B, N): log p(x|y=k) for every seen class k, image b and position n of one
level. The posterior p(y|x) = softmax_k log p(x|y=k) is taken per position.

The likelihood term is the seed's -log p(x|y_hat), summed over the D feature dimensions; the
`per_dim` variant divides it by D (the scale of the training loss), which makes lambda_H * H
D times more influential (D = 24..112 on the default backbone).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def posterior_entropy(log_probs: torch.Tensor) -> torch.Tensor:
    """H(p(y|x)) per (image, position): (K, B, N) -> (B, N). Zero when K == 1."""
    log_post = torch.log_softmax(log_probs, dim=0)
    return -(log_post.exp() * log_post).sum(dim=0)


def image_class_decision(level_log_probs: list[torch.Tensor], dims: list[int]) -> torch.Tensor:
    """y_hat per image (B,): argmax_k of sum over levels of the mean over positions of
    (1/D) log p(x|y=k) -- one class per image, so an anomalous patch cannot pick its own class.
    The 1/D only weighs the levels equally in this choice; the score's scale is separate."""
    total = sum(lp.mean(dim=2) / d for lp, d in zip(level_log_probs, dims, strict=True))
    return total.argmax(dim=0)


def level_score_map(
    chosen_log_prob: torch.Tensor,
    dim: int,
    lambda_entropy: float,
    log_probs: torch.Tensor | None = None,
    per_dim: bool = False,
) -> torch.Tensor:
    """(B, N) map: -log p(x|y_hat) + lambda_H * H(p(y|x)) (seed 001 §3.5), or with
    per_dim -(1/D) log p(x|y_hat) + lambda_H * H(p(y|x)).

    chosen_log_prob is log p(x|y_hat) (B, N); log_probs (K, B, N) gives the posterior for the
    entropy term (left out when None, lambda_H == 0 or K == 1, where H is 0 anyway).
    """
    score = -chosen_log_prob / dim if per_dim else -chosen_log_prob
    if lambda_entropy and log_probs is not None and log_probs.shape[0] > 1:
        score = score + lambda_entropy * posterior_entropy(log_probs)
    return score


def select_class(log_probs: torch.Tensor, choice: torch.Tensor) -> torch.Tensor:
    """log p(x|y=choice) from (K, B, N); choice is per image (B,) or per position (B, N)."""
    if choice.dim() == 1:
        choice = choice[:, None].expand(log_probs.shape[1:])
    return log_probs.gather(0, choice.unsqueeze(0))[0]


def fuse_levels(maps: list[torch.Tensor], input_size: int) -> torch.Tensor:
    """Mean over levels of (B, h, w) maps after bilinear upsampling to (B, H, W)."""
    size = (input_size, input_size)
    up = [
        F.interpolate(m.unsqueeze(1), size=size, mode="bilinear", align_corners=False)[:, 0]
        for m in maps
    ]
    return torch.stack(up, dim=0).mean(dim=0)
