"""CS-Flow's loss: negative log-likelihood of all scales' latents, per dimension."""

from __future__ import annotations

import torch

from nfbench.models.csflow.coupling import n_dims


def csflow_loss(latents: list[torch.Tensor], log_jac_det: torch.Tensor) -> torch.Tensor:
    """mean over the batch of (0.5 ||z||^2 - log|det J|) / D, D = dims over all scales.

    Dividing by D (as the paper's code) keeps the loss on one scale whatever the input size.
    The Gaussian constant is dropped: it does not move gradients.
    """
    sq = sum(0.5 * (z**2).flatten(1).sum(1) for z in latents)
    return torch.mean(sq - log_jac_det) / n_dims(latents)
