"""HGAD's training losses for one feature level (paper Eq. 6, 8, 9 and the repo's later terms).

All terms are means over the level's feature vectors; the likelihood terms are divided by the
feature dimension D as in the official code. With zz = ||z - mu_y||^2 to the main centres and
pi = softmax(phi_inters):
- g:       -(logsumexp_y(-zz/2 + log pi_y) + log|det J|) / D   (inter-class mixture MLE)
- mi:      sum_y t_y (log_softmax_y(-zz/2 + log pi) - log pi_y), pi detached,
           t = label-smoothed one-hot of the known training class (maximised)
- e:       H(softmax_y(-zz/2))                                  (entropy, minimised)
- g_intra: -(logsumexp_j(-||z - c_yj||^2/2 + log w_yj) + log|det J|) / D over the training
           class's intra centres c_yj (main centre detached) and w_y = softmax(phi_intras[y])
- z:       -log sigmoid(log p(x | y) / D), with the Gaussian constant included
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from nfbench.models.hgad.gmm import LOG_SQRT_2PI, HierarchicalGMM, entropy_of_logits


@dataclass(frozen=True)
class LossWeights:
    """total = g*L_g - mi*L_mi + e*L_e (+ g_intra*L_g_intra + z*L_z once warm)."""

    g: float = 1.0
    mi: float = 100.0
    e: float = 1.0
    g_intra: float = 1.0
    z: float = 1.0


def smoothed_onehot(slots: torch.Tensor, n_classes: int, smoothing: float) -> torch.Tensor:
    """One-hot targets with label smoothing, as the repo's `onehot` helper."""
    target = F.one_hot(slots, n_classes).float()
    if smoothing:
        target = target * (1 - smoothing) + smoothing / n_classes
    return target


def hgad_level_losses(
    z: torch.Tensor,
    log_det: torch.Tensor,
    gmm: HierarchicalGMM,
    slots: torch.Tensor,
    label_smoothing: float,
    intra: bool,
) -> dict[str, torch.Tensor]:
    """The named loss terms (scalars) for latents z (N, D), log|det J| (N,) and slots (N,)."""
    dim = z.shape[1]
    logits = gmm.class_logits(z)  # (N, K)
    log_pi = gmm.log_class_weights().unsqueeze(0)  # (1, K)
    terms = {
        "g": ((-torch.logsumexp(logits + log_pi, dim=1) - log_det) / dim).mean(),
        "e": entropy_of_logits(logits).mean(),
    }
    log_pi = log_pi.detach()
    target = smoothed_onehot(slots, gmm.n_classes, label_smoothing).to(z.dtype)
    terms["mi"] = ((torch.log_softmax(logits + log_pi, dim=1) - log_pi) * target).sum(1).mean()
    if intra:
        centres = gmm.intra_centres(detach_main=True)[slots]  # (N, n_intra, D)
        d2 = ((z.unsqueeze(1) - centres) ** 2).sum(-1)  # (N, n_intra)
        log_w = gmm.log_intra_weights()[slots]  # (N, n_intra)
        log_mix = torch.logsumexp(-0.5 * d2 + log_w, dim=1)
        terms["g_intra"] = ((-log_mix - log_det) / dim).mean()
        log_p = (log_mix + log_det) / dim - LOG_SQRT_2PI
        terms["z"] = -F.logsigmoid(log_p).mean()
    return terms


def combine(terms: dict[str, torch.Tensor], weights: LossWeights) -> torch.Tensor:
    """Weighted total; mi is a gain, so it enters with a minus sign."""
    total = weights.g * terms["g"] - weights.mi * terms["mi"] + weights.e * terms["e"]
    if "g_intra" in terms:
        total = total + weights.g_intra * terms["g_intra"] + weights.z * terms["z"]
    return total
