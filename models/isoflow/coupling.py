"""IsoFlow's pieces: convolutions with per-task low-rank adapters, affine couplings over
feature maps whose subnets are made of them, per-task channel alignment.

An affine coupling stays invertible with an exact log-det whatever its subnet computes, so a
task's adapters change the subnet (and so the density) without touching validity: that is
the property DeCoFlow's abstract builds on. Every piece takes the task index explicitly.
"""

from __future__ import annotations

import torch
from torch import nn

from nfbench.models.flows import soft_clamp


class LowRankConv(nn.Module):
    """A convolution W plus, per task t, a low-rank update: conv(x, W) + up_t(down_t(x)), with
    down_t a k x k conv to `rank` channels and up_t a 1 x 1 conv back, initialised at zero so a
    new task starts from the base exactly. rank 0: no adapters (the base alone)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, rank: int) -> None:
        super().__init__()
        self.base = nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2)
        self.shape = (in_channels, out_channels, kernel)
        self.rank = rank
        self.down = nn.ModuleList()
        self.up = nn.ModuleList()

    def add_task(self) -> None:
        if self.rank <= 0:
            return
        cin, cout, kernel = self.shape
        down = nn.Conv2d(cin, self.rank, kernel, padding=kernel // 2, bias=False)
        up = nn.Conv2d(self.rank, cout, 1, bias=False)
        nn.init.zeros_(up.weight)
        anchor = self.base.weight
        self.down.append(down.to(device=anchor.device, dtype=anchor.dtype))
        self.up.append(up.to(device=anchor.device, dtype=anchor.dtype))

    def adapter(self, task: int) -> list[nn.Parameter]:
        return [*self.down[task].parameters(), *self.up[task].parameters()] if self.down else []

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        y = self.base(x)
        if task < len(self.down):
            y = y + self.up[task](self.down[task](x))
        return y


class AdaptedCoupling(nn.Module):
    """A fixed channel permutation, then y2 = x2 * exp(e(s(x1))) + t(x1), y1 = x1, with the
    subnet conv -> ReLU -> conv (FastFlow's, kernel 3 or 1) made of LowRankConvs and e the
    soft clamp. log|det| per position is the sum of e(s) over channels."""

    def __init__(self, channels: int, kernel: int, hidden_ratio: float, clamp: float,
                 rank: int, seed: int) -> None:
        super().__init__()
        self.split = channels // 2
        self.clamp = clamp
        hidden = max(1, int(self.split * hidden_ratio))
        self.conv_in = LowRankConv(self.split, hidden, kernel, rank)
        self.conv_out = LowRankConv(hidden, 2 * (channels - self.split), kernel, rank)
        perm = torch.randperm(channels, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("perm", perm)
        self.register_buffer("inv_perm", torch.argsort(perm))

    def add_task(self) -> None:
        self.conv_in.add_task()
        self.conv_out.add_task()

    def adapter(self, task: int) -> list[nn.Parameter]:
        return self.conv_in.adapter(task) + self.conv_out.adapter(task)

    def _affine(self, x1: torch.Tensor, task: int) -> tuple[torch.Tensor, torch.Tensor]:
        raw = self.conv_out(torch.relu(self.conv_in(x1, task)), task)
        s, t = raw.chunk(2, dim=1)
        return soft_clamp(s, self.clamp), t

    def forward(self, x: torch.Tensor, task: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(y, log|det| per position (B, H, W))."""
        x = x[:, self.perm]
        x1, x2 = x[:, : self.split], x[:, self.split :]
        s, t = self._affine(x1, task)
        return torch.cat([x1, x2 * torch.exp(s) + t], dim=1), s.sum(dim=1)

    def inverse(self, y: torch.Tensor, task: int) -> torch.Tensor:
        y1, y2 = y[:, : self.split], y[:, self.split :]
        s, t = self._affine(y1, task)
        return torch.cat([y1, (y2 - t) * torch.exp(-s)], dim=1)[:, self.inv_perm]


class TaskAlignment(nn.Module):
    """Per task, a per-channel affine map x * exp(a_t) + b_t (identity at the start) in front
    of the frozen base: it moves a task's features to where the base models density well.
    Part of the flow, so its log-det (sum of a_t per position) enters the likelihood."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.log_scale = nn.ParameterList()
        self.shift = nn.ParameterList()

    def add_task(self, anchor: torch.Tensor) -> None:
        zeros = anchor.new_zeros(self.channels)
        self.log_scale.append(nn.Parameter(zeros.clone()))
        self.shift.append(nn.Parameter(zeros.clone()))

    def adapter(self, task: int) -> list[nn.Parameter]:
        return [self.log_scale[task], self.shift[task]] if task < len(self.shift) else []

    def forward(self, x: torch.Tensor, task: int) -> tuple[torch.Tensor, torch.Tensor]:
        if task >= len(self.shift):
            return x, x.new_zeros(x.shape[0], *x.shape[2:])
        a, b = self.log_scale[task], self.shift[task]
        y = x * torch.exp(a)[:, None, None] + b[:, None, None]
        return y, a.sum().expand(x.shape[0], *x.shape[2:])

    def inverse(self, y: torch.Tensor, task: int) -> torch.Tensor:
        if task >= len(self.shift):
            return y
        a, b = self.log_scale[task], self.shift[task]
        return (y - b[:, None, None]) * torch.exp(-a)[:, None, None]


class IsoFlowLevel(nn.Module):
    """One backbone level's flow for task t: alignment_t, the base couplings (kernels 3 and 1
    alternating, as FastFlow) with adapter t in every subnet, then task t's auxiliary
    couplings (full-rank, trained with the task only). The LayerNorm in front belongs to the
    base (as in FastFlow) and is outside the density, as there."""

    def __init__(self, channels: int, size: int, steps: int, hidden_ratio: float, clamp: float,
                 rank: int, alignment: bool, aux_blocks: int, seed: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm([channels, size, size], elementwise_affine=True)
        self.base = nn.ModuleList(
            AdaptedCoupling(channels, 3 if k % 2 == 0 else 1, hidden_ratio, clamp, rank,
                            seed=1000 * seed + k)
            for k in range(steps))
        self.align = TaskAlignment(channels) if alignment else None
        self.aux = nn.ModuleList()
        self.aux_spec = (channels, hidden_ratio, clamp, aux_blocks, seed)

    def add_task(self) -> None:
        """Adapters, alignment and auxiliary couplings of one more task."""
        anchor = self.norm.weight
        for block in self.base:
            block.add_task()
        if self.align is not None:
            self.align.add_task(anchor)
        channels, hidden_ratio, clamp, blocks, seed = self.aux_spec
        task = len(self.aux)
        self.aux.append(nn.ModuleList(
            AdaptedCoupling(channels, 3 if k % 2 == 0 else 1, hidden_ratio, clamp, 0,
                            seed=1000 * seed + 500 + 10 * task + k)
            for k in range(blocks)).to(device=anchor.device, dtype=anchor.dtype))

    def task_parameters(self, task: int) -> list[nn.Parameter]:
        """What task t trains once the base is frozen."""
        params = [p for block in self.base for p in block.adapter(task)]
        if self.align is not None:
            params += self.align.adapter(task)
        return params + list(self.aux[task].parameters())

    def _steps(self, task: int) -> list:
        aux = list(self.aux[task]) if task < len(self.aux) else []
        return [*self.base, *aux]

    def flow(self, x: torch.Tensor, task: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, log|det| per position (B, H, W)) of already-normalised features."""
        log_det = x.new_zeros(x.shape[0], *x.shape[2:])
        if self.align is not None:
            x, ld = self.align(x, task)
            log_det = log_det + ld
        for block in self._steps(task):
            x, ld = block(x, task)
            log_det = log_det + ld
        return x, log_det

    def inverse(self, z: torch.Tensor, task: int) -> torch.Tensor:
        for block in reversed(self._steps(task)):
            z = block.inverse(z, task)
        return self.align.inverse(z, task) if self.align is not None else z

    def forward(self, feat: torch.Tensor, task: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.flow(self.norm(feat), task)
