"""Mean ranks, Friedman and Nemenyi on literal block designs (Demšar 2006)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from nfbench.benchmarks.measuring.ranking import critical_difference, rank_test


def test_critical_difference_matches_demsar_table():
    """Demšar 2006, Table 5(a): q_0.05 = 2.569 for k = 4, so CD = 2.569 sqrt(4*5 / (6 N))."""
    assert critical_difference(4, 20) == pytest.approx(2.569 * np.sqrt(20 / 120), abs=1e-3)
    assert critical_difference(2, 10) == pytest.approx(1.960 * np.sqrt(6 / 60), abs=1e-3)


def test_rank_test_on_a_literal_design():
    scores = pd.DataFrame({"a": [0.9, 0.8, 0.7, 0.95], "b": [0.8, 0.9, 0.6, 0.90],
                           "c": [0.7, 0.7, 0.5, np.nan]})  # the last block lacks c: dropped
    t = rank_test(scores)
    assert t.blocks == 3
    assert t.mean_ranks.to_dict() == pytest.approx({"a": 4 / 3, "b": 5 / 3, "c": 3.0})
    assert list(t.mean_ranks.index) == ["a", "b", "c"]  # best first
    stat, p = sps.friedmanchisquare([0.9, 0.8, 0.7], [0.8, 0.9, 0.6], [0.7, 0.7, 0.5])
    assert (t.statistic, t.p_value) == pytest.approx((stat, p))
    assert t.posthoc.shape == (3, 3) and list(t.posthoc.columns) == ["a", "b", "c"]
    assert t.cd == pytest.approx(critical_difference(3, 3))


def test_rank_test_needs_three_methods_and_two_blocks():
    assert rank_test(pd.DataFrame({"a": [0.9, 0.8], "b": [0.8, 0.7]})) is None
    assert rank_test(pd.DataFrame({"a": [0.9], "b": [0.8], "c": [0.7]})) is None


def test_all_tied_blocks_are_no_evidence():
    t = rank_test(pd.DataFrame({"a": [0.5, 0.5], "b": [0.5, 0.5], "c": [0.5, 0.5]}))
    assert t.p_value == 1.0 and set(t.mean_ranks) == {2.0}
