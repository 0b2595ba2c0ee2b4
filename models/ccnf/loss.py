"""CCNF's loss terms (seed 001 §3.4), each a pure function of tensors, for one level.

Shapes: log_pz, log_det, log_p_* are per vector (any shape, e.g. (B, N)); D is the feature
dimension of the level. Expectations E[.] are means over every vector of the batch.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def nll_loss(log_pz: torch.Tensor, log_det: torch.Tensor, dim: int) -> torch.Tensor:
    """L_g = -(1/D) E[log p(x|y)], log p(x|y) = log p(z) + log|det J|."""
    return -(log_pz + log_det).mean() / dim


def logdet_loss(log_det: torch.Tensor, dim: int) -> torch.Tensor:
    """L_logdet = (1/D) E|log|det J||."""
    return log_det.abs().mean() / dim


def balance_loss(log_pz: torch.Tensor, log_det: torch.Tensor, dim: int) -> torch.Tensor:
    """L_balance = (1/D) | E|log|det J|| - E|log p(z)| |."""
    return (log_det.abs().mean() - log_pz.abs().mean()).abs() / dim


def zreg_loss(z: torch.Tensor) -> torch.Tensor:
    """L_zreg = (std(z) - 1)^2, std over every latent entry of the batch (population std)."""
    return (z.std(correction=0) - 1.0) ** 2


def scale_loss(scales: list[torch.Tensor]) -> torch.Tensor:
    """L_scale = ||s||^2 as the MEAN of squares over every effective log-scale output
    (all couplings, vectors and dimensions), so it does not grow with batch or map size."""
    return torch.cat([s.reshape(-1) for s in scales]).pow(2).mean()


def mi_loss(log_p_true: torch.Tensor, log_p_neg: torch.Tensor, dim: int) -> torch.Tensor:
    """L_mi: the seed's -(log p(x|y_true) - log p(x|y_neg)), bounded by a softplus and scaled
    by 1/D like L_g: (1/D) E softplus(-(delta)). For delta << 0 it equals the seed's form / D;
    for delta >> 0 it goes to 0 instead of -inf, so it cannot run away. It is -(1/D) log of the
    two-class posterior p(y_true | x) = sigmoid(delta), the same posterior used for scoring."""
    return F.softplus(-(log_p_true - log_p_neg)).mean() / dim


def entropy_loss(log_p_true: torch.Tensor, log_p_neg: torch.Tensor) -> torch.Tensor:
    """L_e = E[-p log p - (1-p) log(1-p)], p = sigmoid(log p(x|y_true) - log p(x|y_neg)).

    Computed stably: log p = -softplus(-delta), log(1-p) = -softplus(delta).
    """
    delta = log_p_true - log_p_neg
    p = torch.sigmoid(delta)
    return (p * F.softplus(-delta) + (1 - p) * F.softplus(delta)).mean()
