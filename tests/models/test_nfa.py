"""The a-contrario (NFA) map: exact tails against scipy, its false-alarm promise on Gaussian
noise and its power on a clear shift, checked so that a rule that never fires and one that
fires on every image both fail."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
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


def _noise(n: int, generator: torch.Generator, channels: int = 8) -> list[torch.Tensor]:
    shapes = [(channels, 32, 32), (channels, 16, 16), (channels, 8, 8)]  # finest first
    return [torch.randn(n, *s, generator=generator, dtype=torch.float64) for s in shapes]


# a detection rule on Gaussian latents: (latents of n images, eps) -> which images it flags
DetectionRule = Callable[[list[torch.Tensor], float], np.ndarray]
EPSILONS = (1.0, 0.1, 0.01)


def nfa_rule(latents: list[torch.Tensor], eps: float) -> np.ndarray:
    """U-Flow's rule: an image is flagged where some region has NFA < eps."""
    scores = neg_log10_nfa_map(latents, 64).flatten(1).amax(dim=1).numpy()
    return scores > -math.log10(eps)


def assert_keeps_its_promise(rule: DetectionRule, channels: int = 8, n: int = 200) -> None:
    """A rule that bounds the expected false detections per image by eps flags at most a
    fraction eps of independent-noise images (a one-sided binomial test at 0.1%, so sampling
    noise never fails it), and flags nearly every image with a clear shift (+4 sigma in every
    channel of a 6x6 region): the second half fails a rule that never fires, the first a rule
    that always does."""
    noise = _noise(n, torch.Generator().manual_seed(0), channels)
    for eps in EPSILONS:
        flagged = int(np.sum(rule(noise, eps)))
        p_value = stats.binomtest(flagged, n, min(eps, 1.0), alternative="greater").pvalue
        assert p_value > 1e-3, f"{flagged}/{n} noise images flagged at eps = {eps}"
    shifted = _noise(n // 4, torch.Generator().manual_seed(1), channels)
    shifted[0][:, :, 10:16, 10:16] += 4.0
    detected = float(np.mean(rule(shifted, 1.0)))
    assert detected >= 0.95, f"a clear shift detected in {detected:.0%} of images"


@pytest.mark.parametrize("channels", [8, 64])
def test_nfa_keeps_its_false_alarm_promise_and_detects_a_clear_shift(channels):
    assert_keeps_its_promise(nfa_rule, channels, n=200 if channels == 8 else 60)


def test_the_promise_check_rejects_a_rule_that_never_fires():
    def never(latents, eps):
        return np.zeros(len(latents[0]), dtype=bool)

    with pytest.raises(AssertionError, match="clear shift detected in 0%"):
        assert_keeps_its_promise(never)


def test_the_promise_check_rejects_a_rule_that_fires_on_every_image():
    def always(latents, eps):
        return np.ones(len(latents[0]), dtype=bool)

    with pytest.raises(AssertionError, match="200/200 noise images flagged at eps = 0.1"):
        assert_keeps_its_promise(always)


def test_the_promise_check_rejects_a_rule_that_fires_too_often():
    def lax(latents, eps):  # flags a fifth of all images whatever eps asks for
        return nfa_rule(latents, 1.0) | (np.arange(len(latents[0])) % 5 == 0)

    with pytest.raises(AssertionError, match="noise images flagged at eps = 0.1"):
        assert_keeps_its_promise(lax)


def test_a_shifted_patch_is_detected_far_below_one_false_alarm():
    latents = _noise(4, torch.Generator().manual_seed(1))
    latents[0][0, :, 10:16, 10:16] += 4.0  # an anomalous region in the finest scale
    scores = neg_log10_nfa_map(latents, 64).flatten(1).amax(dim=1)
    assert scores[0] > 6.0  # NFA < 1e-6
    assert (scores[1:] <= 0).all()  # the untouched images stay under NFA = 1
