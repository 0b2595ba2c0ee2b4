"""CFLOW's anomaly map: per-level likelihood maps, normalised, upsampled and summed."""

from __future__ import annotations

from collections.abc import Callable

import torch


def cflow_anomaly_map(
    log_prob_maps: list[torch.Tensor],
    upsample: Callable[[torch.Tensor], torch.Tensor],
    references: torch.Tensor | None = None,
) -> torch.Tensor:
    """(B, H, W) map, higher = more anomalous, from per-level (B, h, w) log p / C maps.

    With `references` (per level, the highest log p / C over the training positions: the
    "train" normalisation), each level is exp(log p - ref), so levels share the scale [0, ~1]
    as in the paper's code (which subtracts the max over the scored set), and the summed
    likelihood is flipped as (levels - sum). Without (the "none" normalisation): -sum of
    exp(log p). Either way a position's value depends on its own image only.
    """
    total = None
    for level, log_p in enumerate(log_prob_maps):
        shifted = log_p if references is None else log_p - references[level]
        up = upsample(torch.exp(shifted))
        total = up if total is None else total + up
    assert total is not None
    return -total if references is None else len(log_prob_maps) - total
