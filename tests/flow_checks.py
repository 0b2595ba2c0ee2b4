"""Checks every flow must pass, shared by the model tests (imported by file, not a package)."""

from __future__ import annotations

from collections.abc import Callable

import torch

# Tiny settings of every model, for the tests that run all of them (batch independence,
# dtype and device, reference entries): one source, so they never drift apart.
TINY_CONFIGS: dict[str, dict] = {
    "fastflow": {"flow_steps": 2},
    "cflow": {"coupling_blocks": 2, "condition_vector": 8, "fiber_batch_size": 32},
    "csflow": {"n_coupling_blocks": 2, "hidden_channels": 8},
    "uflow": {"flow_steps": 2},
    "hgad": {"coupling_blocks": 2, "pos_embed_dim": 8, "n_intra": 3, "train_positions": 8,
             "blur_sigma": 1.0, "warmup_epochs": 1},
    "ccnf": {"embed_dim": 4, "pos_dim": 8, "coupling_blocks": 2, "train_positions": 8,
             "warmup_steps": 2},
    "isoflow": {"flow_steps": 2, "rank": 2, "aux_blocks": 1},
    "msflow": {"parallel_blocks": "1,2", "cond_channels": 8},
    "patchcore": {},
    "anomalib.csflow": {"cross_conv_hidden_channels": 16},  # its default 1024 is slow on CPU
}


def assert_invertible(forward: Callable, inverse: Callable, x: torch.Tensor, atol=1e-4) -> None:
    """inverse(forward(x)) == x."""
    z = forward(x)
    x_back = inverse(z)
    assert torch.allclose(x_back, x, atol=atol), float((x_back - x).abs().max())


def assert_logdet_matches_autograd(
    forward_with_logdet: Callable, x: torch.Tensor, rtol=1e-4, atol=1e-4
) -> None:
    """log|det dz/dx| reported by the flow equals slogdet of autograd's full Jacobian.

    x is one sample of any shape (batch of 1); the Jacobian is over its flattened entries.
    """
    x = x.double()

    def flat_forward(v: torch.Tensor) -> torch.Tensor:
        z, _ = forward_with_logdet(v.view_as(x))
        return z.reshape(-1)

    jac = torch.autograd.functional.jacobian(flat_forward, x.reshape(-1))
    _, expected = torch.linalg.slogdet(jac)
    _, reported = forward_with_logdet(x)
    assert torch.allclose(reported.reshape(()).double(), expected, rtol=rtol, atol=atol), (
        float(reported), float(expected))


def fit_losses(model, feats: list[torch.Tensor], steps: int = 60, lr: float = 1e-3) -> list[float]:
    """Adam on one batch for `steps` steps (one class, id 0); every loss must be finite."""
    from nfbench.models.base import TrainProgress

    ids = torch.zeros(feats[0].shape[0], dtype=torch.long)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    for step in range(steps):
        terms = model.training_loss(feats, ids, TrainProgress(0, 0, step, step))
        assert torch.isfinite(terms.total), f"non-finite loss at step {step}"
        opt.zero_grad()
        terms.total.backward()
        opt.step()
        losses.append(terms.total.item())
    return losses


def assert_multiscale_invertible(flow: Callable, xs: list[torch.Tensor], atol=1e-8) -> None:
    """A flow over several scales at once (list in, list out, rev=True inverts): the inverse
    gives every scale back and the inverse's log-det is minus the forward's."""
    zs, log_det = flow(xs)
    assert log_det.shape == (xs[0].shape[0],) and log_det.abs().sum() > 0
    back, inv_log_det = flow(zs, rev=True)
    for x, b in zip(xs, back, strict=True):
        assert torch.allclose(x, b, atol=atol), float((x - b).abs().max())
    assert torch.allclose(inv_log_det, -log_det)


def multiscale_inputs(channels: list[int], sizes: list[int], batch: int) -> list[torch.Tensor]:
    """Random float64 maps, one per scale (channels[i] x sizes[i] x sizes[i])."""
    return [torch.randn(batch, c, s, s, dtype=torch.float64)
            for c, s in zip(channels, sizes, strict=True)]


def assert_coarsest_moves_finest(flow: Callable, xs: list[torch.Tensor]) -> None:
    """The cross-scale point of a multi-scale flow: the finest latent moves when only the
    coarsest input moves."""
    z0 = flow(xs)[0][0]
    moved = [*xs[:-1], xs[-1] + 1.0]
    assert not torch.allclose(flow(moved)[0][0], z0)
