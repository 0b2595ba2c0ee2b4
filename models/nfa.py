"""A-contrario detection (number of false alarms, NFA) on Gaussian latents.

Introduced for U-Flow (Tailanian et al., 2024) and applied here to every flow whose latents are
N(0, I) under the normal model (FastFlow, CFLOW, CS-Flow, U-Flow, CCNF): each latent entry then
has z^2 ~ chi2(1), and an entry is a "candidate" when z^2 >= tau with
tau = chi2.ppf(probability_thr, 1), i.e. with probability p = 1 - probability_thr. Around each
position, a (2h+1)^2 window (h = window // 2 at the finest scale, halved per coarser scale, at
least 1) holds k candidates per channel on average (count over the window and all channels,
divided by the channel count). Under the null that count is Binomial(n = (2h+1)^2, p), so
log10 P(X > k) is the per-scale tail; scales are combined by summing these log10 tails after
bicubic upsampling, and NFA = (number of tests = positions over all scales) * that
probability. The map returned is -log10 NFA: > 0 means NFA < 1, the detection rule.

What it promises: under the null (independent N(0, 1) latent entries) NFA < eps gives at most
eps false detections per image in expectation, hence at most a fraction eps of noise images
flagged (tests/models/test_nfa.py checks this and that a clear shift is detected). What it does
not: the binomial count assumes independent entries, so spatially correlated latents (what a
flow trained on few images gives) exceed the bound (blurred noise, sigma 1.5, flags most
images at 8 channels), and averaging candidates over channels dilutes a shift confined to
a few of them (a +2 sigma shift in a quarter of the channels is detected less often as the
channel count grows, never at 256). This is U-Flow's formulation, kept as the paper has it;
the benchmark reports each model's measured false-alarm rate next to its F1
(benchmarks/measuring/thresholds.py).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats
from torch.nn import functional as F

LOG10_FLOOR = -300.0  # log10 tails are floored here so maps stay finite (P = 0 in float64)


def window_candidate_counts(z: torch.Tensor, half_window: int, tau: float) -> torch.Tensor:
    """(B, 1, h, w): candidates (z^2 >= tau) in the window around each position, per channel."""
    candidates = (z.double() ** 2 >= tau).double()
    mode = "reflect" if min(z.shape[-2:]) > half_window else "replicate"
    padded = F.pad(candidates, (half_window,) * 4, mode=mode)
    size = 2 * half_window + 1
    window_sums = F.avg_pool2d(padded, size, stride=1, divisor_override=1)
    return window_sums.sum(dim=1, keepdim=True) / z.shape[1]


def binomial_log10_tail(z: torch.Tensor, window: float, probability_thr: float) -> torch.Tensor:
    """(B, 1, h, w) log10 P(Binomial(n, 1 - probability_thr) > k), k = candidates per channel."""
    tau = float(stats.chi2.ppf(probability_thr, 1))
    half = max(int(window // 2), 1)
    k = window_candidate_counts(z, half, tau)
    n = (2 * half + 1) ** 2
    log_tail = stats.binom.logsf(k.detach().cpu().numpy(), n, 1.0 - probability_thr) / math.log(10)
    log_tail = np.maximum(log_tail, LOG10_FLOOR)
    return torch.from_numpy(log_tail).to(z.device)


def neg_log10_nfa_map(
    latents: list[torch.Tensor], size: int, window: int = 5, probability_thr: float = 0.9
) -> torch.Tensor:
    """(B, size, size) -log10 NFA from latent maps (B, C, h, w), finest scale first (the
    window halves per scale)."""
    tails = [
        binomial_log10_tail(z, window / 2**scale, probability_thr)
        for scale, z in enumerate(latents)
    ]
    log_prob = sum(
        F.interpolate(t, size=(size, size), mode="bicubic", align_corners=True) for t in tails)
    n_tests = sum(z.shape[-2] * z.shape[-1] for z in latents)
    log_nfa = math.log10(n_tests) + log_prob
    return (-log_nfa)[:, 0].to(latents[0].dtype)  # computed in float64: the model's dtype
