"""CFLOW's loss: -log sigmoid of the per-dimension log-likelihood of each sampled position."""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F


def cflow_log_prob(z: torch.Tensor, log_jac_det: torch.Tensor) -> torch.Tensor:
    """log p(x) per vector (N,) from z (N, C) and log|det J| (N,), Gaussian constant included.

    Divided by C: the paper's code normalises by the feature dimension so that levels with
    different channel counts give likelihoods on one scale.
    """
    dim = z.shape[1]
    log_p = -0.5 * dim * math.log(2 * math.pi) - 0.5 * (z**2).sum(dim=1) + log_jac_det
    return log_p / dim


def cflow_loss(log_probs: list[torch.Tensor]) -> torch.Tensor:
    """Sum over levels of mean(-log sigmoid(log p / C)), as in the paper's training loop.

    The sigmoid saturates the loss once a vector is very likely, which keeps the per-dimension
    log-likelihood from running off to +inf on easy positions.
    """
    loss = log_probs[0].new_zeros(())
    for log_p in log_probs:
        loss = loss + (-F.logsigmoid(log_p)).mean()
    return loss
