"""FastFlow's loss: negative log-likelihood of the latents, summed over levels."""

from __future__ import annotations

import torch


def fastflow_loss(latents: list[torch.Tensor], log_jac_dets: list[torch.Tensor]) -> torch.Tensor:
    """sum over levels of mean over the batch of (0.5 ||z||^2 - log|det J|).

    The constant of the Gaussian is dropped, as in the paper's code; it does not move gradients.
    """
    loss = latents[0].new_zeros(())
    for z, log_det in zip(latents, log_jac_dets, strict=True):
        loss = loss + torch.mean(0.5 * torch.sum(z**2, dim=(1, 2, 3)) - log_det)
    return loss
