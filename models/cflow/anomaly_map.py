"""CFLOW's anomaly map: per-level likelihood maps, normalised, upsampled and summed."""

from __future__ import annotations

from collections.abc import Callable

import torch


def cflow_anomaly_map(
    log_prob_maps: list[torch.Tensor],
    upsample: Callable[[torch.Tensor], torch.Tensor],
    normalization: str = "batch",
) -> torch.Tensor:
    """(B, H, W) map, higher = more anomalous, from per-level (B, h, w) log p / C maps.

    normalization "batch" (the paper's code): each level is exp(log p - max over all positions
    of all images in the batch), so levels share the scale [0, 1]; the summed likelihood is
    flipped as max - sum. That max depends on the batch; "none" uses exp(log p) as is and
    -sum, which makes scores independent of what else is in the batch.
    """
    if normalization not in ("batch", "none"):
        raise ValueError(f"unknown CFLOW map normalization {normalization!r} (batch|none)")
    total = None
    for log_p in log_prob_maps:
        shifted = log_p - log_p.max() if normalization == "batch" else log_p
        up = upsample(torch.exp(shifted))
        total = up if total is None else total + up
    assert total is not None
    return total.max() - total if normalization == "batch" else -total
