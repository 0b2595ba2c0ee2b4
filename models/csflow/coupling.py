"""CS-Flow's invertible pieces, written here because FrEIA has no cross-scale block.

A block acts on a list of S feature maps (one per scale) at once. Its coupling subnets are
cross-scale convolutions: each scale's s, t depend on every scale through strided (down) and
upsampled (up) convolutions, so information is exchanged across scales while the block stays
exactly invertible (the subnet only ever reads the half that is passed through unchanged).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from nfbench.models.flows import ScalePermute


class CrossConvolutions(nn.Module):
    """Subnet over S scales: conv -> leaky ReLU -> conv per scale, plus the hidden maps of the
    neighbouring scales brought in by an upsampled conv (from the coarser one) and a stride-2
    conv (from the finer one). Outputs are scaled by learnable gammas initialised at 0, so every
    block starts as the identity, as in the paper."""

    def __init__(
        self, in_channels: list[int], out_channels: list[int], hidden: int, kernel_size: int,
        leaky_slope: float = 0.1,
    ) -> None:
        super().__init__()
        pad = kernel_size // 2
        n = len(in_channels)
        self.first = nn.ModuleList(
            nn.Conv2d(c, hidden, kernel_size, padding=pad) for c in in_channels)
        self.second = nn.ModuleList(
            nn.Conv2d(hidden, c, kernel_size, padding=pad) for c in out_channels)
        # up[i]: hidden of scale i+1 (coarser), upsampled, into scale i's output
        self.up = nn.ModuleList(
            nn.Conv2d(hidden, out_channels[i], kernel_size, padding=pad) for i in range(n - 1))
        # down[i]: hidden of scale i (finer), stride 2, into scale i+1's output
        self.down = nn.ModuleList(
            nn.Conv2d(hidden, out_channels[i + 1], kernel_size, padding=pad, stride=2)
            for i in range(n - 1))
        self.gamma = nn.Parameter(torch.zeros(n))
        self.act = nn.LeakyReLU(leaky_slope)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        hidden = [self.act(conv(x)) for conv, x in zip(self.first, xs, strict=True)]
        out = [conv(h) for conv, h in zip(self.second, hidden, strict=True)]
        for i in range(len(xs) - 1):
            size_i, size_j = out[i].shape[-2:], out[i + 1].shape[-2:]
            up = F.interpolate(hidden[i + 1], size=size_i, mode="bilinear", align_corners=False)
            out[i] = out[i] + self.up[i](up)
            down = self.down[i](hidden[i])
            if down.shape[-2:] != size_j:  # odd sizes: stride 2 rounds up, pooling rounds down
                down = F.interpolate(down, size=size_j, mode="bilinear", align_corners=False)
            out[i + 1] = out[i + 1] + down
        return [o * self.gamma[i] for i, o in enumerate(out)]


def soft_clamp(s: torch.Tensor, clamp: float) -> torch.Tensor:
    """The paper's log-scale clamp: alpha * 0.636 * atan(s / alpha), in (-alpha, alpha)."""
    return clamp * 0.636 * torch.atan(s / clamp) if clamp > 0 else s


class CrossScaleCoupling(nn.Module):
    """Glow-style affine coupling applied to every scale in parallel (channel halves x1, x2):
    y1 = x1 * exp(e(s1(x2))) + t1(x2);  y2 = x2 * exp(e(s2(y1))) + t2(y1), where s, t of one
    scale come from all scales. log|det J| = sum of e(s) over both halves and all scales."""

    def __init__(
        self, channels: list[int], hidden: int, kernel_size: int, clamp: float,
        leaky_slope: float = 0.1,
    ) -> None:
        super().__init__()
        self.len1 = [c // 2 for c in channels]
        self.len2 = [c - c // 2 for c in channels]
        self.clamp = clamp
        self.net1 = CrossConvolutions(
            self.len2, [2 * n for n in self.len1], hidden, kernel_size, leaky_slope)
        self.net2 = CrossConvolutions(
            self.len1, [2 * n for n in self.len2], hidden, kernel_size, leaky_slope)

    def _affine(self, net: nn.Module, cond: list[torch.Tensor], lens: list[int]):
        out = net(cond)
        log_s = [soft_clamp(o[:, :n], self.clamp) for o, n in zip(out, lens, strict=True)]
        t = [o[:, n:] for o, n in zip(out, lens, strict=True)]
        return log_s, t

    def forward(
        self, xs: list[torch.Tensor], rev: bool = False
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        x1 = [x[:, :n] for x, n in zip(xs, self.len1, strict=True)]
        x2 = [x[:, n:] for x, n in zip(xs, self.len1, strict=True)]
        if not rev:
            ls1, t1 = self._affine(self.net1, x2, self.len1)
            y1 = [a * torch.exp(s) + t for a, s, t in zip(x1, ls1, t1, strict=True)]
            ls2, t2 = self._affine(self.net2, y1, self.len2)
            y2 = [b * torch.exp(s) + t for b, s, t in zip(x2, ls2, t2, strict=True)]
            sign = 1.0
        else:  # xs are outputs here: undo the second half first
            ls2, t2 = self._affine(self.net2, x1, self.len2)
            y2 = [(b - t) * torch.exp(-s) for b, s, t in zip(x2, ls2, t2, strict=True)]
            ls1, t1 = self._affine(self.net1, y2, self.len1)
            y1 = [(a - t) * torch.exp(-s) for a, s, t in zip(x1, ls1, t1, strict=True)]
            sign = -1.0
        log_det = sum(s.flatten(1).sum(1) for s in ls1 + ls2)
        out = [torch.cat([a, b], dim=1) for a, b in zip(y1, y2, strict=True)]
        return out, sign * log_det


class CrossScaleFlow(nn.Module):
    """n_blocks x (permute, cross-scale coupling); kernel 3, the last block kernel 5 (paper)."""

    def __init__(
        self, channels: list[int], n_blocks: int, hidden: int, clamp: float,
        kernel_sizes: list[int] | None = None, leaky_slope: float = 0.1,
    ) -> None:
        super().__init__()
        kernels = kernel_sizes or [3] * (n_blocks - 1) + [5]
        layers: list[nn.Module] = []
        for k in range(n_blocks):
            layers.append(ScalePermute(channels, seed=k))
            layers.append(CrossScaleCoupling(channels, hidden, kernels[k], clamp, leaky_slope))
        self.layers = nn.ModuleList(layers)

    def forward(
        self, xs: list[torch.Tensor], rev: bool = False
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        log_det = xs[0].new_zeros(xs[0].shape[0])
        for layer in reversed(self.layers) if rev else self.layers:
            xs, ld = layer(xs, rev=rev)
            log_det = log_det + ld
        return xs, log_det


def n_dims(xs: list[torch.Tensor]) -> int:
    """Dimensions of one sample across all scales."""
    return sum(math.prod(x.shape[1:]) for x in xs)
