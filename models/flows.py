"""Flow building blocks shared by several models (one place for each idea)."""

from __future__ import annotations

import math

import torch
from torch import nn


def gaussian_log_prob(z: torch.Tensor, dim: int | tuple[int, ...] = 1) -> torch.Tensor:
    """log N(z; 0, I) summed over `dim` (the constant term included)."""
    d = z.shape[dim] if isinstance(dim, int) else math.prod(z.shape[i] for i in dim)
    return -0.5 * (z**2).sum(dim=dim) - 0.5 * d * math.log(2 * math.pi)


def positional_encoding_2d(channels: int, height: int, width: int) -> torch.Tensor:
    """Sin/cos 2D positional encoding (C, H, W), as in CFLOW-AD: half the channels per axis."""
    if channels % 4:
        raise ValueError(f"positional encoding needs channels divisible by 4, got {channels}")
    pe = torch.zeros(channels, height, width)
    half = channels // 2
    div = torch.exp(torch.arange(0.0, half, 2) * -(math.log(1e4) / half))
    pos_w = torch.arange(0.0, width).unsqueeze(1)
    pos_h = torch.arange(0.0, height).unsqueeze(1)
    pe[0:half:2] = torch.sin(pos_w * div).T.unsqueeze(1).repeat(1, height, 1)
    pe[1:half:2] = torch.cos(pos_w * div).T.unsqueeze(1).repeat(1, height, 1)
    pe[half::2] = torch.sin(pos_h * div).T.unsqueeze(2).repeat(1, 1, width)
    pe[half + 1 :: 2] = torch.cos(pos_h * div).T.unsqueeze(2).repeat(1, 1, width)
    return pe


def conv_subnet(kernel_size: int, hidden_ratio: float):
    """FrEIA subnet constructor: conv -> ReLU -> conv, 'same' padding (FastFlow's subnet)."""

    def build(in_channels: int, out_channels: int) -> nn.Module:
        hidden = max(1, int(in_channels * hidden_ratio))
        pad = kernel_size // 2
        net = nn.Sequential(
            nn.Conv2d(in_channels, hidden, kernel_size, padding=pad),
            nn.ReLU(),
            nn.Conv2d(hidden, out_channels, kernel_size, padding=pad),
        )
        return net

    return build


def mlp_subnet(hidden_ratio: float = 1.0):
    """FrEIA subnet constructor for vector flows: Linear -> ReLU -> Linear."""

    def build(in_features: int, out_features: int) -> nn.Module:
        hidden = max(1, int(in_features * hidden_ratio))
        return nn.Sequential(
            nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, out_features)
        )

    return build


def maybe_spectral_norm(layer: nn.Linear, enabled: bool) -> nn.Linear:
    """Wrap a Linear in torch's spectral-norm parametrization (sigma_max <= 1) when enabled."""
    if not enabled:
        return layer
    return nn.utils.parametrizations.spectral_norm(layer)


class ActNorm(nn.Module):
    """Glow's per-channel affine normalisation over the last dim, initialised from the first
    batch it sees in training (zero mean, unit std per channel). log|det| = sum(log_scale).

    A channel that is constant on that batch (a ReLU feature that never fires) would get a
    scale of 1/eps, and any later non-zero value in it a latent of ~1e6 that overflows every
    map; its std is floored at `relative_floor` times the mean std of the other channels."""

    def __init__(self, channels: int, eps: float = 1e-6, relative_floor: float = 0.01) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.register_buffer("initialized", torch.tensor(False))
        self.eps = eps
        self.relative_floor = relative_floor

    @torch.no_grad()
    def _init_from(self, x: torch.Tensor) -> None:
        flat = x.reshape(-1, x.shape[-1])
        self.bias.copy_(-flat.mean(dim=0))
        std = flat.std(dim=0)
        std = torch.maximum(std, self.relative_floor * std.mean())
        self.log_scale.copy_(-torch.log(std + self.eps))
        self.initialized.fill_(True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(y, log|det| per vector) for x (..., C)."""
        if self.training and not bool(self.initialized):
            self._init_from(x)
        y = (x + self.bias) * torch.exp(self.log_scale)
        return y, self.log_scale.sum().expand(x.shape[:-1])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * torch.exp(-self.log_scale) - self.bias


def gaussian_blur_2d(maps: torch.Tensor, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """Separable Gaussian blur of (B, H, W) maps, radius truncate*sigma as scipy's
    gaussian_filter (equal to its mode='mirror'), clipped to what the map size allows."""
    radius = min(int(truncate * sigma + 0.5), min(maps.shape[-2:]) - 1)
    if sigma <= 0 or radius < 1:
        return maps
    offsets = torch.arange(-radius, radius + 1, dtype=maps.dtype, device=maps.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    x = nn.functional.pad(maps.unsqueeze(1), (radius, radius, radius, radius), mode="reflect")
    x = nn.functional.conv2d(x, kernel.view(1, 1, 1, -1))
    x = nn.functional.conv2d(x, kernel.view(1, 1, -1, 1))
    return x[:, 0]


class ScalePermute(nn.Module):
    """A fixed random channel permutation per scale (volume preserving, log-det 0), for flows
    over several scales at once (CS-Flow's cross-scale flow, MSFlow's fusion flow)."""

    def __init__(self, channels: list[int], seed: int) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        for i, c in enumerate(channels):
            perm = torch.randperm(c, generator=gen)
            self.register_buffer(f"perm_{i}", perm)
            self.register_buffer(f"inv_{i}", torch.argsort(perm))

    def forward(
        self, xs: list[torch.Tensor], rev: bool = False
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        key = "inv" if rev else "perm"
        out = [x[:, getattr(self, f"{key}_{i}")] for i, x in enumerate(xs)]
        return out, xs[0].new_zeros(xs[0].shape[0])


def soft_clamp(s: torch.Tensor, clamp: float) -> torch.Tensor:
    """CS-Flow's log-scale clamp (MSFlow's too): alpha * 0.636 * atan(s / alpha), in
    (-alpha, alpha); alpha <= 0 leaves s as it is."""
    return clamp * 0.636 * torch.atan(s / clamp) if clamp > 0 else s


class ScaleAffineCoupling(nn.Module):
    """Glow-style affine coupling applied to every scale at once (channel halves x1, x2):
    y1 = x1 exp(e(s1(x2))) + t1(x2);  y2 = x2 exp(e(s2(y1))) + t2(y1), with e the soft clamp
    and s, t of one scale computed from all scales. log|det J| = sum of e(s) over both halves
    and all scales. Subclasses own the two subnets (CS-Flow's cross-scale convolutions,
    MSFlow's fusion subnet) and say how they give raw s and t (`_raw_affine`)."""

    def __init__(self, channels: list[int], clamp: float) -> None:
        super().__init__()
        self.len1 = [c // 2 for c in channels]
        self.len2 = [c - c // 2 for c in channels]
        self.clamp = clamp

    def _raw_affine(self, first: bool, cond: list[torch.Tensor]
                    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Unclamped log-scales and shifts per scale: of x1 from x2 (first) or of x2 from y1."""
        raise NotImplementedError

    def _affine(self, first: bool, cond: list[torch.Tensor]):
        s, t = self._raw_affine(first, cond)
        return [soft_clamp(v, self.clamp) for v in s], t

    def forward(
        self, xs: list[torch.Tensor], rev: bool = False
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        x1 = [x[:, :n] for x, n in zip(xs, self.len1, strict=True)]
        x2 = [x[:, n:] for x, n in zip(xs, self.len1, strict=True)]
        if not rev:
            ls1, t1 = self._affine(True, x2)
            y1 = [a * torch.exp(s) + t for a, s, t in zip(x1, ls1, t1, strict=True)]
            ls2, t2 = self._affine(False, y1)
            y2 = [b * torch.exp(s) + t for b, s, t in zip(x2, ls2, t2, strict=True)]
            sign = 1.0
        else:  # xs are outputs here: undo the second half first
            ls2, t2 = self._affine(False, x1)
            y2 = [(b - t) * torch.exp(-s) for b, s, t in zip(x2, ls2, t2, strict=True)]
            ls1, t1 = self._affine(True, y2)
            y1 = [(a - t) * torch.exp(-s) for a, s, t in zip(x1, ls1, t1, strict=True)]
            sign = -1.0
        log_det = sum(s.flatten(1).sum(1) for s in ls1 + ls2)
        out = [torch.cat([a, b], dim=1) for a, b in zip(y1, y2, strict=True)]
        return out, sign * log_det
