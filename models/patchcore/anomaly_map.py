"""PatchCore scoring: chunked nearest-neighbour search over the memory bank, the anomaly map
(upsampled, Gaussian-blurred patch distances) and the image score (max, optionally the paper's
re-weighting, Eq. 7)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from nfbench.models.flows import gaussian_blur_2d


def nearest_neighbours(
    queries: torch.Tensor, bank: torch.Tensor, chunk_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distance (Q,) from each query row to its nearest bank row, and that row's
    index (Q,). torch.cdist on blocks of at most chunk_size x chunk_size, so the memory of one
    call is bounded whatever the bank's size."""
    step = max(1, chunk_size)
    distances, indices = [], []
    for q_lo in range(0, queries.shape[0], step):
        q = queries[q_lo : q_lo + step]
        best = q.new_full((q.shape[0],), math.inf)
        arg = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
        for b_lo in range(0, bank.shape[0], step):
            dist, idx = torch.cdist(q, bank[b_lo : b_lo + step]).min(dim=1)
            closer = dist < best
            best = torch.where(closer, dist, best)
            arg = torch.where(closer, idx + b_lo, arg)
        distances.append(best)
        indices.append(arg)
    return torch.cat(distances), torch.cat(indices)


def reweighted_scores(
    patch_scores: torch.Tensor, nn_index: torch.Tensor, patches: torch.Tensor,
    bank: torch.Tensor, neighbours: int,
) -> torch.Tensor:
    """Eq. 7: s = (1 - softmax over N_b(m*) of ||m_test* - m||, taken at m*) * s*, per image.

    patch_scores, nn_index: (B, P); patches: (B, P, D). m_test* is the image's patch with the
    largest distance s*, m* its nearest bank row, N_b(m*) the b bank rows nearest to m* (m*
    itself first)."""
    rows = torch.arange(patch_scores.shape[0], device=patch_scores.device)
    worst = patch_scores.argmax(dim=1)
    s_star = patch_scores[rows, worst]
    m_star = bank[nn_index[rows, worst]]
    b = min(neighbours, bank.shape[0])
    support = torch.cdist(m_star, bank).topk(b, dim=1, largest=False).indices  # (B, b)
    dist = torch.linalg.vector_norm(patches[rows, worst].unsqueeze(1) - bank[support], dim=-1)
    return (1.0 - torch.softmax(dist, dim=1)[:, 0]) * s_star


def patchcore_anomaly_map(
    patch_scores: torch.Tensor, upsample: Callable[[torch.Tensor], torch.Tensor], sigma: float
) -> torch.Tensor:
    """(B, h, w) patch distances -> (B, H, W): bilinear upsampling, then a Gaussian blur."""
    return gaussian_blur_2d(upsample(patch_scores), sigma)
