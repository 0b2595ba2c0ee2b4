"""MSFlow's multi-scale aggregation: one rule for localisation, another for detection.

Every scale gives a log-likelihood map log p_l = -mean over channels of z^2 / 2 (B, h_l, w_l).
- Localisation ("add", the official `anomaly_score_map_add`): per scale p_l = exp(log p_l -
  its max over the image), upsampled (bilinear, align corners) to the input size and summed
  over scales into P; map = max over the image of P - P.
- Detection ("mul", the official `anomaly_score_map_mul`): the upsampled log p_l are summed
  over scales (a product of likelihoods), the image's max subtracted, exponentiated into P;
  map = max(P) - P; image score = mean of the top-k values of that map, k = top_k x H x W.
The official code takes every max over each image's own map (never over the test set or the
batch), so these are kept as they are: every value is a function of its own image only.

That per-image normalisation saturates on a class the flow no longer models: S then spans
hundreds of nats within one image, exp(S - max S) is 0 everywhere but at the maximum, and every
image scores 1.0 (README "Saturation"). `image_score="nll"` keeps the ranking S holds: the
top-k mean of -S itself, with no per-image exponent.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

MAP_MODES = ("add", "mul")
IMAGE_SCORES = ("normalised", "nll")  # the paper's (default) | top-k of -S, no saturation


def log_prob_maps(latents: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per scale (B, h, w): -0.5 * mean over channels of z^2."""
    return [-0.5 * torch.mean(z**2, dim=1) for z in latents]


def _upsample(maps: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(
        maps.unsqueeze(1), size=(size, size), mode="bilinear", align_corners=True)[:, 0]


def _image_max(maps: torch.Tensor) -> torch.Tensor:
    """(B, 1, 1): each image's own maximum."""
    return maps.flatten(1).amax(dim=1).view(-1, 1, 1)


def localisation_map(log_probs: list[torch.Tensor], size: int) -> torch.Tensor:
    """(B, size, size) 'add' map: max(P) - P, P = sum over scales of per-image-normalised
    probabilities; in [0, number of scales]."""
    prob = sum(_upsample(torch.exp(lp - _image_max(lp)), size) for lp in log_probs)
    return _image_max(prob) - prob


def summed_log_prob(log_probs: list[torch.Tensor], size: int) -> torch.Tensor:
    """(B, size, size) S = sum over scales of upsampled log p (the log of their product)."""
    return sum(_upsample(lp, size) for lp in log_probs)


def detection_map(total: torch.Tensor) -> torch.Tensor:
    """(B, size, size) 'mul' map from S: 1 - exp(S - max S); in [0, 1]."""
    prob = torch.exp(total - _image_max(total))
    return _image_max(prob) - prob


def top_k_image_score(maps: torch.Tensor, top_k: float) -> torch.Tensor:
    """(B,) mean of the k largest values of each map, k = max(1, int(top_k * H * W))."""
    flat = maps.flatten(1)
    k = min(flat.shape[1], max(1, int(top_k * flat.shape[1])))
    return flat.topk(k, dim=1).values.mean(dim=1)


def msflow_scores(
    latents: list[torch.Tensor], size: int, map_mode: str = "add", top_k: float = 0.03,
    image_score: str = "normalised",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(maps (B, size, size), image scores (B,)): maps by `map_mode`; image scores the top-k
    mean of the detection ('mul') map as the paper ("normalised"), or of -S ("nll")."""
    if map_mode not in MAP_MODES:
        raise ValueError(f"unknown MSFlow map mode {map_mode!r} ({'|'.join(MAP_MODES)})")
    if image_score not in IMAGE_SCORES:
        raise ValueError(f"unknown MSFlow image score {image_score!r} ({'|'.join(IMAGE_SCORES)})")
    log_probs = log_prob_maps(latents)
    total = summed_log_prob(log_probs, size)
    detection = detection_map(total)
    maps = localisation_map(log_probs, size) if map_mode == "add" else detection
    scored = detection if image_score == "normalised" else -total
    return maps, top_k_image_score(scored, top_k)
