"""Tie flags: a class with more than TIE_SHARE_LIMIT of its images on one score is flagged
(with its share and value), untied scores never are, and unseen tasks are not looked at."""

from __future__ import annotations

import numpy as np
import pytest

from nfbench.benchmarks.measuring.ties import TIE_SHARE_LIMIT, largest_tie, tied_classes

CLASSES = np.array(["brick"] * 10 + ["grass"] * 10 + ["plaid"] * 10)
TASK_OF = np.repeat([0, 1, 2], 10)


def test_largest_tie() -> None:
    assert largest_tie(np.array([0.3, 1.0, 1.0, 0.2, 1.0])) == (pytest.approx(0.6), 1.0)
    assert largest_tie(np.array([0.1, 0.2, 0.3, 0.4]))[0] == pytest.approx(0.25)
    share, value = largest_tie(np.array([]))
    assert share == 0.0 and np.isnan(value)


def test_a_saturated_class_is_flagged_with_its_share_and_value() -> None:
    rng = np.random.default_rng(0)
    scores = rng.random(30)
    scores[:10] = 1.0  # brick: every image on exactly 1.0 (a saturated score)
    scores[10:13] = 0.5  # grass: 3 of 10 tied, above the limit
    scores[20:30] = 1.0  # plaid: all tied, but task 2 is not yet seen after task 1
    flags = tied_classes(scores, CLASSES, TASK_OF, after_task=1)
    assert flags == [
        {"after_task": 1, "task": 0, "class": "brick", "share": 1.0, "value": 1.0, "images": 10},
        {"after_task": 1, "task": 1, "class": "grass", "share": pytest.approx(0.3),
         "value": 0.5, "images": 10}]


def test_untied_scores_and_ties_at_the_limit_are_not_flagged() -> None:
    scores = np.random.default_rng(1).random(30)
    assert tied_classes(scores, CLASSES, TASK_OF, after_task=2) == []
    at_limit = int(TIE_SHARE_LIMIT * 10)  # 2 of 10: not more than the limit
    scores[:at_limit] = 0.7
    assert tied_classes(scores, CLASSES, TASK_OF, after_task=2) == []
