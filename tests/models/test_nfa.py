"""The a-contrario (NFA) map: exact tails against scipy, calibration on Gaussian noise."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats

from nfbench.models.nfa import binomial_log10_tail, neg_log10_nfa_map, window_candidate_counts


def test_nfa_literal_values_against_scipy():
    # 2 channels on a 3x3 map; probability_thr 0.9 -> tau = chi2_1.ppf(0.9) = 2.7055
    z = torch.zeros(1, 2, 3, 3, dtype=torch.float64)
    z[0, 0, 1, 1] = 3.0  # z^2 = 9 >= tau: a candidate
    z[0, 1, 1, 1] = 2.0  # z^2 = 4 >= tau
    z[0, 1, 0, 0] = 1.0  # z^2 = 1 < tau: not a candidate
    # window 3 (half 1), reflect padding: the centre window holds 2 candidates -> k = 2/2 = 1
    k = window_candidate_counts(z, 1, float(stats.chi2.ppf(0.9, 1)))
    assert k[0, 0, 1, 1].item() == 1.0
    # corner (0,0): reflect padding mirrors the centre into 4 cells of its window -> 8/2 = 4
    assert k[0, 0, 0, 0].item() == 4.0
    tail = binomial_log10_tail(z, 3, 0.9)
    expected = math.log10(stats.binom.sf(1, 9, 0.1))  # P(Bin(9, 0.1) > 1)
    assert abs(tail[0, 0, 1, 1].item() - expected) < 1e-12
    # one scale, 9 tests: -log10 NFA = -(log10 9 + log10 P); at the centre of a 3x3 target
    # with align_corners the bicubic interpolation is exact on the grid
    nfa = neg_log10_nfa_map([z], size=3, window=3, probability_thr=0.9)
    assert abs(nfa[0, 1, 1].item() - (-(math.log10(9) + expected))) < 1e-5
    assert abs(nfa[0, 0, 0].item() + math.log10(9) + math.log10(stats.binom.sf(4, 9, 0.1))) < 1e-4


def _noise(n: int, generator: torch.Generator) -> list[torch.Tensor]:
    shapes = [(8, 32, 32), (8, 16, 16), (8, 8, 8)]  # three scales, finest first
    return [torch.randn(n, *s, generator=generator, dtype=torch.float64) for s in shapes]


def test_gaussian_noise_keeps_false_alarms_under_epsilon():
    # Under the null (latents N(0, I)) the expected number of detections with NFA < eps is at
    # most eps per image, so at most a fraction eps of noise images may have any.
    max_scores = neg_log10_nfa_map(_noise(200, torch.Generator().manual_seed(0)), 64)
    max_scores = max_scores.flatten(1).amax(dim=1).numpy()
    for eps in (1.0, 0.1, 0.01):
        assert np.mean(max_scores > -math.log10(eps)) <= eps


def test_a_shifted_patch_is_detected_far_below_one_false_alarm():
    latents = _noise(4, torch.Generator().manual_seed(1))
    latents[0][0, :, 10:16, 10:16] += 4.0  # an anomalous region in the finest scale
    scores = neg_log10_nfa_map(latents, 64).flatten(1).amax(dim=1)
    assert scores[0] > 6.0  # NFA < 1e-6
    assert (scores[1:] <= 0).all()  # the untouched images stay under NFA = 1
