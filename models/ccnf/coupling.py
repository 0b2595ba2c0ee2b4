"""CCNF's coupling block and per-level flow (seed 001 §3.3.1, §3.3.3).

A level's flow acts on feature VECTORS: x is (B, N, C) with N = H*W positions, each position a
sample. The condition is [class embedding e_y, 2D positional encoding p]. It enters every
coupling subnet by FiLM: h = (1 + gamma) * W_in x_a + beta, with (gamma, beta) = W_c [e_y; p] + b.
Because W_c is linear, W_c [e; p] = W_e e + W_p p, so the FiLM parameters are computed once per
class and once per position and broadcast, never per (image, position) pair.

Stabilisers (§3.3.3), each switchable: spectral norm on every Linear, scale clamp
s = alpha * tanh(s), and the additive-to-affine warm-up s <- s * warm with warm in [0, 1]
(warm = 0 is an additive, volume-preserving coupling: log|det J| = 0 exactly).
"""

from __future__ import annotations

import torch
from torch import nn

from nfbench.models.flows import ActNorm, gaussian_log_prob, maybe_spectral_norm


class CCNFCoupling(nn.Module):
    """Affine coupling y_b = x_b * exp(s(x_a, e_y, p)) + t(x_a, e_y, p); y_a = x_a."""

    def __init__(
        self,
        channels: int,
        embed_dim: int,
        pos_dim: int,
        hidden: int,
        spectral_norm: bool = True,
        scale_clamp: bool = True,
        alpha: float = 0.7,
        zero_init: bool = False,
    ) -> None:
        super().__init__()
        self.split = channels // 2
        out_dim = channels - self.split
        self.embed_dim = embed_dim
        self.scale_clamp = scale_clamp
        self.alpha = alpha
        self.inp = maybe_spectral_norm(nn.Linear(self.split, hidden), spectral_norm)
        self.film = maybe_spectral_norm(nn.Linear(embed_dim + pos_dim, 2 * hidden), spectral_norm)
        self.out = maybe_spectral_norm(nn.Linear(hidden, 2 * out_dim), spectral_norm)
        self.act = nn.ReLU()
        # identity start: out = tanh(g) * W_out h with g = 0; |tanh(g)| <= 1 keeps the bound
        self.gain = nn.Parameter(torch.zeros(2 * out_dim)) if zero_init else None

    def _scale_shift(
        self, x_a: torch.Tensor, emb: torch.Tensor, pos: torch.Tensor, warm: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Effective log-scale s (after clamp and warm-up) and shift t."""
        w = self.film.weight  # one access: one power iteration per forward in training
        film = emb @ w[:, : self.embed_dim].T + (pos @ w[:, self.embed_dim :].T + self.film.bias)
        gamma, beta = film.chunk(2, dim=-1)
        h = self.act(self.inp(x_a) * (1.0 + gamma) + beta)
        out = self.out(h)
        if self.gain is not None:
            out = torch.tanh(self.gain) * out
        s, t = out.chunk(2, dim=-1)
        if self.scale_clamp:
            s = self.alpha * (2.0 * torch.sigmoid(2.0 * s) - 1.0)  # = alpha*tanh(s), faster on CPU
        return s * warm, t

    def forward(
        self, x: torch.Tensor, emb: torch.Tensor, pos: torch.Tensor, warm: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, N, C), emb (B|1, 1, E), pos (1, N, P) -> (y, s); log|det J| = s.sum(-1)."""
        x_a, x_b = x[..., : self.split], x[..., self.split :]
        s, t = self._scale_shift(x_a, emb, pos, warm)
        return torch.cat([x_a, x_b * torch.exp(s) + t], dim=-1), s

    def inverse(
        self, y: torch.Tensor, emb: torch.Tensor, pos: torch.Tensor, warm: float = 1.0
    ) -> torch.Tensor:
        y_a, y_b = y[..., : self.split], y[..., self.split :]
        s, t = self._scale_shift(y_a, emb, pos, warm)
        return torch.cat([y_a, (y_b - t) * torch.exp(-s)], dim=-1)


class CCNFLevel(nn.Module):
    """One level's flow: [ActNorm] -> (coupling -> fixed channel permutation) x blocks."""

    def __init__(
        self,
        channels: int,
        embed_dim: int,
        pos_dim: int,
        blocks: int,
        hidden: int,
        spectral_norm: bool = True,
        scale_clamp: bool = True,
        alpha: float = 0.7,
        actnorm: bool = True,
        zero_init: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.actnorm = ActNorm(channels) if actnorm else None
        self.couplings = nn.ModuleList(
            CCNFCoupling(channels, embed_dim, pos_dim, hidden, spectral_norm, scale_clamp, alpha,
                         zero_init)
            for _ in range(blocks)
        )
        generator = torch.Generator().manual_seed(seed)
        for k in range(blocks):  # fixed permutation as a 0/1 matrix: x @ P == x[..., perm]
            perm = torch.randperm(channels, generator=generator)  # (exact; faster than a gather)
            self.register_buffer(f"perm{k}", torch.eye(channels)[:, perm])

    def forward(
        self, x: torch.Tensor, emb: torch.Tensor, pos: torch.Tensor, warm: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """x (B, N, C) -> (z, log|det J| (B, N), effective log-scales of every coupling)."""
        log_det = x.new_zeros(x.shape[:-1])
        if self.actnorm is not None:
            x, ld = self.actnorm(x)
            log_det = log_det + ld
        scales = []
        for k, coupling in enumerate(self.couplings):
            x, s = coupling(x, emb, pos, warm)
            x = x @ getattr(self, f"perm{k}")
            log_det = log_det + s.sum(dim=-1)
            scales.append(s)
        return x, log_det, scales

    def inverse(
        self, z: torch.Tensor, emb: torch.Tensor, pos: torch.Tensor, warm: float = 1.0
    ) -> torch.Tensor:
        for k in reversed(range(len(self.couplings))):
            z = z @ getattr(self, f"perm{k}").T
            z = self.couplings[k].inverse(z, emb, pos, warm)
        return z if self.actnorm is None else self.actnorm.inverse(z)

    def log_prob(
        self, x: torch.Tensor, emb: torch.Tensor, pos: torch.Tensor, warm: float = 1.0
    ) -> torch.Tensor:
        """log p(x | y) per vector (B, N)."""
        z, log_det, _ = self(x, emb, pos, warm)
        return gaussian_log_prob(z, dim=-1) + log_det
