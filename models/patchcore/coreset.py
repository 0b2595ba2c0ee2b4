"""Greedy coreset subsampling (PatchCore §3.2, Algorithm 1): k-center greedy selection on a
random linear projection of the patch features, seeded so a coreset is reproducible."""

from __future__ import annotations

import math

import torch


def random_projection(
    features: torch.Tensor, dim: int, generator: torch.Generator
) -> torch.Tensor:
    """(N, D) -> (N, dim) through a Gaussian matrix with N(0, 1/dim) entries (Johnson-
    Lindenstrauss); features already of `dim` or fewer dimensions are returned as they are."""
    if dim <= 0 or features.shape[1] <= dim:
        return features
    matrix = torch.randn(features.shape[1], dim, generator=generator, dtype=features.dtype)
    return features @ (matrix / math.sqrt(dim)).to(features.device)


def greedy_coreset_indices(
    features: torch.Tensor, size: int, seed: int, projection_dim: int = 128
) -> torch.Tensor:
    """Indices (size,) of a k-center greedy coreset of the rows of `features` (N, D).

    The first centre is a seeded random row; each next one is the row farthest (Euclidean, in
    the projected space) from every centre chosen so far. Indices are distinct and in the order
    chosen; size >= N returns every row.
    """
    n = features.shape[0]
    if size >= n:
        return torch.arange(n, device=features.device)
    generator = torch.Generator().manual_seed(seed)
    points = random_projection(features, projection_dim, generator)
    sq_norms = points.pow(2).sum(dim=1)
    # the loop never reads a value back to the host: on a GPU the 'size' steps are queued
    # without one synchronisation each (which cost ms per step with other processes sharing it)
    chosen = torch.empty(size, dtype=torch.long, device=points.device)
    idx = torch.randint(n, (1,), generator=generator).to(points.device)
    min_sq = torch.full_like(sq_norms, math.inf)
    for i in range(size):
        chosen[i] = idx[0]
        centre = points.index_select(0, idx)[0]
        # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2: one matrix-vector product per centre
        min_sq = torch.minimum(min_sq, sq_norms - 2.0 * (points @ centre) + sq_norms[idx])
        min_sq.index_fill_(0, idx, -math.inf)  # never chosen again (duplicates included)
        idx = torch.argmax(min_sq).view(1)
    return chosen.to(features.device)


def coreset_size(n: int, ratio: float) -> int:
    """Rows kept of n at `ratio` (the paper's percentage): at least one, at most n."""
    return max(1, min(n, int(n * ratio)))
