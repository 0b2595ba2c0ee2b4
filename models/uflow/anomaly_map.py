"""U-Flow's likelihood map (for AUROC). Its a-contrario -log10 NFA map lives in models/nfa.py,
shared with every flow whose latents are Gaussian."""

from __future__ import annotations

from collections.abc import Callable

import torch


def likelihood_map(
    latents: list[torch.Tensor], upsample: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """1 - mean over scales of exp(-0.5 * mean over channels of z^2), upsampled: in [0, 1]."""
    probs = [upsample(torch.exp(-0.5 * (z**2).mean(dim=1))) for z in latents]
    return 1.0 - torch.stack(probs).mean(dim=0)
