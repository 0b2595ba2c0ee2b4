"""HGAD's hierarchical Gaussian mixture prior over one level's flow latents.

Class y has a main (inter-class) centre `mus[y]` and n_intra intra-class centres: the main
centre itself plus `mu_deltas[y, j]` offsets from it. Every component has identity covariance.
Class weights are softmax(phi_inters) over the classes seen so far; intra weights are
softmax(phi_intras[y]). Rows are indexed by *slot* (order of first appearance); the model maps
global class ids to slots. The GMM starts empty and grows when new classes arrive.
"""

from __future__ import annotations

import math

import torch
from torch import nn

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def squared_distances(z: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """||z_i - c_j||^2 for z (N, D) and centres (..., D) -> (N, ...), via the expanded form."""
    flat = centres.reshape(-1, centres.shape[-1])
    d = (z**2).sum(1, keepdim=True) - 2 * z @ flat.T + (flat**2).sum(1).unsqueeze(0)
    return d.reshape(z.shape[0], *centres.shape[:-1])


def entropy_of_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax(logits) along the last dim (nats)."""
    log_p = torch.log_softmax(logits, dim=-1)
    return -(log_p.exp() * log_p).sum(-1)


class HierarchicalGMM(nn.Module):
    """One level's class-conditional mixture: inter-class centres + intra-class offsets."""

    def __init__(self, dim: int, n_intra: int, init_scale: float = 5.0) -> None:
        super().__init__()
        if n_intra < 1:
            raise ValueError(f"n_intra must be >= 1, got {n_intra}")
        self.dim = dim
        self.n_intra = n_intra
        self.init_scale = init_scale
        self.mus = nn.Parameter(torch.zeros(0, dim))
        self.mu_deltas = nn.Parameter(torch.zeros(0, n_intra - 1, dim))
        self.phi_intras = nn.Parameter(torch.zeros(0, n_intra))
        self.phi_inters = nn.Parameter(torch.zeros(0))

    @property
    def n_classes(self) -> int:
        return self.mus.shape[0]

    def _new_centres(
        self, first: int, count: int, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Main centres for slots first..first+count-1, with the repo's geometry.

        The repo sets class c to `5/sqrt(2*D//K)` on dims c, c+K, c+2K, ... so centres are
        orthogonal, of norm 5/sqrt(2) and 5 apart. K is unknown when classes arrive one task at a
        time, so slot s gets 5/sqrt(2) on dim s alone: the same norms and distances for s < D.
        Slots beyond D get a random direction of that norm.
        """
        value = self.init_scale / math.sqrt(2.0)
        mu = torch.zeros(count, self.dim)
        for i in range(count):
            slot = first + i
            if slot < self.dim:
                mu[i, slot] = value
            else:
                v = torch.randn(self.dim, generator=generator)
                mu[i] = value * v / v.norm()
        return mu

    @torch.no_grad()
    def grow(self, count: int, generator: torch.Generator | None = None) -> None:
        """Append `count` classes: main centres as in `_new_centres`, offsets ~ N(0, I) (the
        repo's init), zero intra and inter logits. Existing rows are kept unchanged."""
        if count <= 0:
            return
        dev, dt = self.mus.device, self.mus.dtype
        mu = self._new_centres(self.n_classes, count, generator)
        delta = torch.randn(count, self.n_intra - 1, self.dim, generator=generator)
        self.mus = nn.Parameter(torch.cat([self.mus.data, mu.to(dev, dt)]))
        self.mu_deltas = nn.Parameter(torch.cat([self.mu_deltas.data, delta.to(dev, dt)]))
        self.phi_intras = nn.Parameter(
            torch.cat([self.phi_intras.data, self.phi_intras.new_zeros(count, self.n_intra)]))
        self.phi_inters = nn.Parameter(
            torch.cat([self.phi_inters.data, self.phi_inters.new_zeros(count)]))

    # ---- pieces ---------------------------------------------------------------------------
    def log_class_weights(self) -> torch.Tensor:
        """log softmax(phi_inters): (K,)."""
        return torch.log_softmax(self.phi_inters, dim=0)

    def log_intra_weights(self) -> torch.Tensor:
        """log softmax(phi_intras) per class: (K, n_intra)."""
        return torch.log_softmax(self.phi_intras, dim=1)

    def intra_centres(self, detach_main: bool = False) -> torch.Tensor:
        """(K, n_intra, D): the main centre followed by main + each offset."""
        main = self.mus.detach() if detach_main else self.mus
        main = main.unsqueeze(1)
        return torch.cat([main, main + self.mu_deltas], dim=1)

    def inter_distances(self, z: torch.Tensor) -> torch.Tensor:
        """Squared distances to the main centres: (N, K)."""
        return squared_distances(z, self.mus)

    def class_logits(self, z: torch.Tensor) -> torch.Tensor:
        """-0.5 ||z - mu_y||^2: the (prior-free) class logits that HGAD's entropy uses."""
        return -0.5 * self.inter_distances(z)

    def class_entropy(self, z: torch.Tensor, with_prior: bool = False) -> torch.Tensor:
        """H(p(y|z)) per vector (N,), over the main centres; HGAD's own form has no prior."""
        logits = self.class_logits(z)
        if with_prior:
            logits = logits + self.log_class_weights()
        return entropy_of_logits(logits)

    # ---- log-densities (full Gaussian constants included) ---------------------------------
    def log_prob_per_class(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z | y) under each class's intra mixture: (N, K)."""
        d2 = squared_distances(z, self.intra_centres())  # (N, K, n_intra)
        log_mix = torch.logsumexp(-0.5 * d2 + self.log_intra_weights().unsqueeze(0), dim=2)
        return log_mix - self.dim * LOG_SQRT_2PI

    def log_prob_given_class(self, z: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        """log p(z | y = slots[i]) for each vector (N,)."""
        return self.log_prob_per_class(z).gather(1, slots.view(-1, 1)).squeeze(1)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) = logsumexp_y [log pi_y + log p(z | y)] over all classes: (N,).

        With no class yet, the prior is N(0, I).
        """
        if self.n_classes == 0:
            return -0.5 * (z**2).sum(1) - self.dim * LOG_SQRT_2PI
        joint = self.log_prob_per_class(z) + self.log_class_weights().unsqueeze(0)
        return torch.logsumexp(joint, dim=1)
