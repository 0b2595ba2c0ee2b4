"""FastFlow's anomaly map: mean over levels of -exp(mean log-prob), upsampled."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def fastflow_anomaly_map(latents: list[torch.Tensor], input_size: int) -> torch.Tensor:
    """(B, H, W) map; higher means more anomalous. -exp keeps levels on a comparable scale."""
    maps = []
    for z in latents:
        log_prob = -0.5 * torch.mean(z**2, dim=1, keepdim=True)
        prob = torch.exp(log_prob)
        maps.append(
            F.interpolate(-prob, size=(input_size, input_size), mode="bilinear",
                          align_corners=False)
        )
    return torch.stack(maps, dim=-1).mean(dim=-1)[:, 0]
