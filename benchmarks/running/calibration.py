"""The calibration split: normal training images held out for the automatic thresholds only.

A threshold fitted on the images a model was fitted on sees scores lower than a new normal
image gets (a memory bank scores its own images near zero), so it flags far more normal test
images than its rule promises. Each class of the scenario therefore gives a seeded fraction of
its normal training images (default 10%, at least one) to calibration. The strategies see a
dataset whose training sets lack them, so no phase of any strategy trains on them; the
threshold callback calibrates on the held-out images of every class whose training images the
learner still holds (a replayed class keeps its calibration images with it; joint holds all).

The split reuses the validation split's per-class draw (validation.split_class), seeded by the
cell's seed: the same images for every model and strategy of a seed. Fraction 0 is the old
behaviour: no split, calibration on the training images themselves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from nfbench.benchmarks.running.validation import SplitSpec, split_class
from nfbench.datasets.base import Dataset, DatasetError, Sample

DEFAULT_CALIBRATION_SPLIT = 0.1


def check_fraction(fraction: float) -> float:
    """The split as a float in [0, 1); anything else is a one-line user error."""
    if not 0.0 <= float(fraction) < 1.0:
        raise DatasetError(f"the calibration split must be in [0, 1), got {fraction}")
    return float(fraction)


@dataclass(frozen=True)
class CalibrationSplit:
    """The dataset strategies train from, and each class's held-out calibration images."""

    fraction: float
    training: Dataset  # every class's training set without its calibration images
    held_out: dict[str, list[Sample]]  # class -> its calibration images (empty at fraction 0)

    def calibration_images(self, held: Iterable[Sample]) -> list[Sample]:
        """The images the thresholds are fitted on, given the training images the learner
        holds: the calibration images of every class among them (fraction 0: `held`)."""
        held = list(held)
        if not self.fraction:
            return held
        classes = dict.fromkeys(s.class_name for s in held)
        return [s for name in classes for s in self.held_out[name]]

    def describe(self, holds: str) -> str:
        """Where the thresholds come from, in words, for records and reports."""
        if not self.fraction:
            return f"{holds} (no calibration split: the images the model was fitted on)"
        return f"{self.fraction * 100:g}% calibration split held out of {holds}"


def split_for_calibration(
    dataset: Dataset, classes: Iterable[str], fraction: float, seed: int
) -> CalibrationSplit:
    """Hold out `fraction` of each listed class's training images (seeded per class)."""
    fraction = check_fraction(fraction)
    if not fraction:
        return CalibrationSplit(0.0, dataset, {})
    spec = SplitSpec(fraction=fraction, min_holdout=1, seed=seed)
    kept_classes, held_out = dict(dataset.classes), {}
    for name in classes:
        data = dataset[name]
        by_path = {s.path: s for s in data.train}
        try:
            kept, held = split_class(list(by_path), name, spec)
        except DatasetError as err:
            raise DatasetError(f"class '{name}' has {len(by_path)} training images: too few "
                               f"for a {fraction * 100:g}% calibration split "
                               "(--calibration-split 0 calibrates on them)") from err
        kept_classes[name] = dataclasses.replace(data, train=[by_path[p] for p in kept])
        held_out[name] = [by_path[p] for p in held]
    return CalibrationSplit(fraction, dataclasses.replace(dataset, classes=kept_classes),
                            held_out)
