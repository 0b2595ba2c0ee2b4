"""CS-Flow's scores: from |z|^2 of every scale."""

from __future__ import annotations

from collections.abc import Callable

import torch

MAP_MODES = ("product", "finest", "mean")


def csflow_anomaly_map(
    latents: list[torch.Tensor],
    upsample: Callable[[torch.Tensor], torch.Tensor],
    mode: str = "product",
) -> torch.Tensor:
    """(B, H, W) map from the mean over channels of z^2 at each position, upsampled.

    product (anomalib's default): multiply the scales' maps, so a position must look unlikely
    at every scale; returned as the geometric mean (the S-th root: same ranking, but values stay
    on the z^2 scale, so they survive the harness's float16 maps); finest: the finest scale
    alone (the paper's localisation figure); mean: the mean over scales.
    """
    if mode not in MAP_MODES:
        raise ValueError(f"unknown CS-Flow map mode {mode!r} ({'|'.join(MAP_MODES)})")
    per_scale = [upsample((z**2).mean(dim=1)) for z in latents]
    if mode == "finest":
        return per_scale[0]
    if mode == "mean":
        return torch.stack(per_scale).mean(dim=0)
    log_sum = sum(torch.log(m.clamp_min(1e-30)) for m in per_scale)
    return torch.exp(log_sum / len(per_scale))


def csflow_image_score(latents: list[torch.Tensor]) -> torch.Tensor:
    """The paper's image score: mean of z^2 / 2 over every dimension of every scale."""
    flat = torch.cat([z.flatten(1) for z in latents], dim=1)
    return (flat**2 / 2).mean(dim=1)
