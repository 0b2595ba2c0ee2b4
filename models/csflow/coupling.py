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

from nfbench.models.flows import ScaleAffineCoupling, ScalePermute


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


class CrossScaleCoupling(ScaleAffineCoupling):
    """The scale-parallel affine coupling whose subnets are cross-scale convolutions (each
    returns s and t of its half stacked along channels)."""

    def __init__(
        self, channels: list[int], hidden: int, kernel_size: int, clamp: float,
        leaky_slope: float = 0.1,
    ) -> None:
        super().__init__(channels, clamp)
        self.net1 = CrossConvolutions(
            self.len2, [2 * n for n in self.len1], hidden, kernel_size, leaky_slope)
        self.net2 = CrossConvolutions(
            self.len1, [2 * n for n in self.len2], hidden, kernel_size, leaky_slope)

    def _raw_affine(self, first: bool, cond: list[torch.Tensor]):
        net, lens = (self.net1, self.len1) if first else (self.net2, self.len2)
        out = net(cond)
        return ([o[:, :n] for o, n in zip(out, lens, strict=True)],
                [o[:, n:] for o, n in zip(out, lens, strict=True)])


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
