"""Shared flow blocks."""

from __future__ import annotations

import torch

from nfbench.models.flows import ActNorm


def test_actnorm_starts_at_zero_mean_unit_std_and_floors_dead_channels():
    x = torch.randn(64, 3) * torch.tensor([2.0, 0.5, 0.0]) + torch.tensor([1.0, -1.0, 0.0])
    norm = ActNorm(3).train()
    y, log_det = norm(x)
    assert torch.allclose(y[:, :2].mean(0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(y[:, :2].std(0), torch.ones(2), atol=1e-4)
    # a channel that never fired gets 100x the mean std's scale at most, not 1/eps
    floor = 0.01 * x.std(0).mean()
    assert torch.isclose(norm.log_scale[2], -torch.log(floor + 1e-6), atol=1e-5)
    assert torch.allclose(log_det, norm.log_scale.sum().expand(64))
    back = norm.inverse(y)
    assert torch.allclose(back, x, atol=1e-5)
