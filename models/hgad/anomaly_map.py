"""HGAD's anomaly map: (likelihood anomaly) x (entropy anomaly), each fused over levels.

The official validation, per level: normality = exp(logp - max logp) and, for the entropy,
exp(-H - max(-H)); each upsampled and summed over levels, turned into anomaly as
(max - sum), Gaussian-blurred (sigma 4 at 256 px), and the two factors multiplied. Every max
there is over the whole test set of one class, which a scorer of one image at a time cannot
see, so here each is taken over the training data (`HGAD.finish_task`, final parameters): per
level the highest per-dimension log-likelihood and the highest -H over the training
positions, and per factor the highest summed normality over the training pixels. A test
position more normal than every training one is clipped to that maximum (anomaly >= 0).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from nfbench.models.flows import gaussian_blur_2d


def normality(
    values: list[torch.Tensor],
    references: torch.Tensor,
    upsample: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """sum over levels of up(exp(min(v_l - ref_l, 0))): (B, H, W), each level in (0, 1]."""
    return sum(upsample(torch.exp((v - references[i]).clamp(max=0.0)))
               for i, v in enumerate(values))


def hgad_anomaly_map(
    log_probs: list[torch.Tensor],
    entropies: list[torch.Tensor] | None,
    log_prob_refs: torch.Tensor,
    neg_entropy_refs: torch.Tensor,
    normal_max: torch.Tensor,
    upsample: Callable[[torch.Tensor], torch.Tensor],
    sigma: float,
) -> torch.Tensor:
    """(B, H, W) anomaly map from per-level (B, h, w) per-dimension log-likelihoods and
    entropies of p(y|z). References (see the module doc): per level `log_prob_refs` and
    `neg_entropy_refs`, and `normal_max` (2,) for the likelihood and entropy factors.
    `entropies=None` (fewer than two classes) uses the likelihood factor alone."""
    like = (normal_max[0] - normality(log_probs, log_prob_refs, upsample)).clamp(min=0.0)
    maps = gaussian_blur_2d(like, sigma)
    if entropies is not None:
        neg_h = [-h for h in entropies]
        certain = (normal_max[1] - normality(neg_h, neg_entropy_refs, upsample)).clamp(min=0.0)
        maps = maps * gaussian_blur_2d(certain, sigma)
    return maps
