"""MSFlow's invertible pieces: asymmetric parallel flows (one per scale) and the fusion flow.

Parallel flows: per scale, a FrEIA SequenceINN of AllInOne blocks (affine coupling, hard
channel permutation, softplus global affine) whose subnets see the passive half concatenated
with a 2D sin/cos positional encoding. The spatial size is nominal (1 x 1), as in the official
code, so the flows are fully convolutional and accept any map size.

Fusion flow: a fixed channel permutation per scale, then a fusion coupling: a Glow-style
affine coupling applied to every scale at once (channel halves x1, x2), whose s, t for one
scale come from all scales (pooled to the coarsest size, fused by conv-LN-ReLU-conv, split
back, upsampled and added to each scale's own input). The subnets only read the half that is
passed through unchanged, so the whole flow stays exactly invertible.
"""

from __future__ import annotations

import FrEIA.framework as Ff
import FrEIA.modules as Fm
import torch
from torch import nn
from torch.nn import functional as F

from nfbench.models.flows import ScaleAffineCoupling, ScalePermute, positional_encoding_2d


class ConvLNSubnet(nn.Module):
    """The parallel flows' subnet: conv3x3 -> LayerNorm over channels -> ReLU -> conv3x3, hidden
    width = input width (official code's `subnet_conv_ln`)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.norm = nn.LayerNorm(in_channels)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.conv1(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.conv2(torch.relu(h))


def build_parallel_flow(
    channels: int, cond_channels: int, n_blocks: int, clamp: float
) -> Ff.SequenceINN:
    """One scale's flow: n_blocks AllInOne blocks, conditioned on a positional encoding of
    cond_channels channels (0: unconditioned)."""
    flow = Ff.SequenceINN(channels, 1, 1)
    cond = {"cond": 0, "cond_shape": (cond_channels, 1, 1)} if cond_channels else {}
    for _ in range(n_blocks):
        flow.append(Fm.AllInOneBlock, subnet_constructor=ConvLNSubnet, affine_clamping=clamp,
                    global_affine_type="SOFTPLUS", permute_soft=False, **cond)
    return flow


class FusionSubnet(nn.Module):
    """s, t for every scale from all scales: pool each to the coarsest (last) size, concatenate,
    conv3x3 -> LayerNorm -> ReLU -> conv3x3 -> ReLU, split per scale, upsample (bilinear, align
    corners), add to that scale's input, then per-scale conv3x3 heads for s and t."""

    def __init__(
        self, in_channels: list[int], out_channels: list[int], hidden_ratio: float
    ) -> None:
        super().__init__()
        total = sum(in_channels)
        hidden = max(4, int(total * hidden_ratio))  # a LayerNorm over 1 channel outputs 0
        self.in_channels = list(in_channels)
        self.conv1 = nn.Conv2d(total, hidden, 3, padding=1)
        self.norm = nn.LayerNorm(hidden)
        self.conv2 = nn.Conv2d(hidden, total, 3, padding=1)
        self.conv_s = nn.ModuleList(
            nn.Conv2d(c, o, 3, padding=1) for c, o in zip(in_channels, out_channels, strict=True))
        self.conv_t = nn.ModuleList(
            nn.Conv2d(c, o, 3, padding=1) for c, o in zip(in_channels, out_channels, strict=True))

    def forward(self, xs: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        size = xs[-1].shape[-2:]
        h = torch.cat([F.adaptive_avg_pool2d(x, size) for x in xs], dim=1)
        h = self.norm(self.conv1(h).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        h = torch.relu(self.conv2(torch.relu(h)))
        parts = torch.split(h, self.in_channels, dim=1)
        fused = [
            x + F.interpolate(p, size=x.shape[-2:], mode="bilinear", align_corners=True)
            for x, p in zip(xs, parts, strict=True)]
        s = [conv(f) for conv, f in zip(self.conv_s, fused, strict=True)]
        t = [conv(f) for conv, f in zip(self.conv_t, fused, strict=True)]
        return s, t


class FusionCoupling(ScaleAffineCoupling):
    """The scale-parallel affine coupling whose subnets are fusion subnets: s and t of one
    scale computed from all scales pooled together."""

    def __init__(self, channels: list[int], clamp: float, hidden_ratio: float) -> None:
        super().__init__(channels, clamp)
        self.net_a = FusionSubnet(self.len2, self.len1, hidden_ratio)  # x2 -> s, t of x1
        self.net_b = FusionSubnet(self.len1, self.len2, hidden_ratio)  # y1 -> s, t of x2

    def _raw_affine(self, first: bool, cond: list[torch.Tensor]):
        return (self.net_a if first else self.net_b)(cond)


class MultiScaleFlow(nn.Module):
    """Parallel flows (one per scale, finest first) followed by the fusion flow: one bijection
    over all scales at once, with one log|det J| per sample."""

    def __init__(
        self, channels: list[int], parallel_blocks: list[int], cond_channels: int, clamp: float,
        fusion_blocks: int = 1, fusion_hidden_ratio: float = 0.25,
    ) -> None:
        super().__init__()
        if len(parallel_blocks) != len(channels):
            raise ValueError(f"MSFlow: {len(parallel_blocks)} parallel block counts for "
                             f"{len(channels)} scales")
        if cond_channels % 4:
            raise ValueError(f"MSFlow: cond_channels must be a multiple of 4, got {cond_channels}")
        self.cond_channels = cond_channels
        self.parallel = nn.ModuleList(
            build_parallel_flow(c, cond_channels, n, clamp)
            for c, n in zip(channels, parallel_blocks, strict=True))
        fusion: list[nn.Module] = []
        for k in range(fusion_blocks):
            fusion.append(ScalePermute(channels, seed=k))
            fusion.append(FusionCoupling(channels, clamp, fusion_hidden_ratio))
        self.fusion = nn.ModuleList(fusion)

    def _condition(self, x: torch.Tensor) -> list[torch.Tensor]:
        if not self.cond_channels:
            return []
        pe = positional_encoding_2d(self.cond_channels, *x.shape[-2:]).to(x)
        return [pe.unsqueeze(0).expand(x.shape[0], -1, -1, -1)]

    def _run_parallel(self, xs: list[torch.Tensor], rev: bool):
        out, log_det = [], xs[0].new_zeros(xs[0].shape[0])
        for x, flow in zip(xs, self.parallel, strict=True):
            z, ld = flow(x, c=self._condition(x), rev=rev)
            out.append(z)
            log_det = log_det + ld
        return out, log_det

    def _run_fusion(self, xs: list[torch.Tensor], rev: bool):
        log_det = xs[0].new_zeros(xs[0].shape[0])
        for layer in reversed(self.fusion) if rev else self.fusion:
            xs, ld = layer(xs, rev=rev)
            log_det = log_det + ld
        return xs, log_det

    def forward(
        self, xs: list[torch.Tensor], rev: bool = False
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(latents per scale, log|det J| per sample); rev=True inverts (latents -> inputs)."""
        if rev:
            xs, ld_fusion = self._run_fusion(list(xs), rev=True)
            xs, ld_parallel = self._run_parallel(xs, rev=True)
        else:
            xs, ld_parallel = self._run_parallel(list(xs), rev=False)
            xs, ld_fusion = self._run_fusion(xs, rev=False)
        return xs, ld_parallel + ld_fusion
