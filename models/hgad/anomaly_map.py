"""HGAD's anomaly map: (likelihood anomaly) x (entropy anomaly), levels fused, then blurred.

The official validation, per level: normality = exp(logp - max logp) and, for the entropy,
exp(-H - max(-H)); both upsampled and summed over levels, turned into anomaly as
(max - sum), multiplied together, then Gaussian-blurred (sigma 4 at 256 px). The maxima there
are taken over the whole test set of one class, which a batch-wise scorer cannot see, so here:
- the log-likelihood reference is a fixed per-level constant (the highest per-dimension
  training log-likelihood of the current task), and normality is clipped to <= 1;
- max(-H) is its bound 0, and the (max - sum) constant is the number of levels (the bound).
Both changes are monotone shifts per level, so rankings within a level are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from nfbench.models.flows import gaussian_blur_2d


def hgad_anomaly_map(
    log_probs: list[torch.Tensor],
    entropies: list[torch.Tensor] | None,
    references: list[float],
    upsample: Callable[[torch.Tensor], torch.Tensor],
    sigma: float,
) -> torch.Tensor:
    """(B, H, W) anomaly map from per-level (B, h, w) per-dimension log-likelihoods and
    entropies of p(y|z). `entropies=None` (fewer than two classes) uses the likelihood alone."""
    levels = len(log_probs)
    normal = sum(upsample(torch.exp((lp - ref).clamp(max=0.0)))
                 for lp, ref in zip(log_probs, references, strict=True))
    maps = levels - normal
    if entropies is not None:
        certain = sum(upsample(torch.exp(-h)) for h in entropies)
        maps = maps * (levels - certain)
    return gaussian_blur_2d(maps, sigma)
