"""The calibration split: held out of training, seeded, kept by replayed classes."""

from __future__ import annotations

from pathlib import Path

import pytest

from nfbench.benchmarks.running.calibration import check_fraction, split_for_calibration
from nfbench.benchmarks.running.strategies import build_config
from nfbench.benchmarks.running.strategies.joint import Joint
from nfbench.benchmarks.running.strategies.replay import Replay
from nfbench.datasets.base import ClassData, Dataset, DatasetError, Sample
from nfbench.datasets.scenarios import build_scenario
from nfbench.models.registry import get_model_class

CLASSES = ("alpha", "beta", "gamma")


def _dataset(n_train: int = 40) -> Dataset:
    def data(name: str) -> ClassData:
        train = [Sample(Path(f"/d/{name}/train/good/{i:03d}.png"), name, 0)
                 for i in range(n_train)]
        test = [Sample(Path(f"/d/{name}/test/good/{i:03d}.png"), name, 0) for i in range(3)]
        return ClassData(name, train, test)

    return Dataset("toy", Path("/d"), {name: data(name) for name in CLASSES})


def _paths(samples) -> set[Path]:
    return {s.path for s in samples}


def test_each_class_gives_a_tenth_of_its_training_images_never_trained_on():
    dataset = _dataset()
    split = split_for_calibration(dataset, CLASSES, 0.1, seed=0)
    for name in CLASSES:
        kept, held = split.training[name].train, split.held_out[name]
        assert len(held) == 4 and len(kept) == 36
        assert not _paths(kept) & _paths(held)
        assert _paths(kept) | _paths(held) == _paths(dataset[name].train)
        assert split.training[name].test == dataset[name].test  # test sets untouched
    assert len(dataset["alpha"].train) == 40  # the shared dataset is not modified


def test_the_split_depends_on_the_seed_only():
    first = split_for_calibration(_dataset(), CLASSES, 0.1, seed=0)
    again = split_for_calibration(_dataset(), ["gamma", "alpha", "beta"], 0.1, seed=0)
    other = split_for_calibration(_dataset(), CLASSES, 0.1, seed=1)
    assert all(first.held_out[c] == again.held_out[c] for c in CLASSES)  # order of classes
    assert any(first.held_out[c] != other.held_out[c] for c in CLASSES)


def test_split_zero_is_the_old_behaviour():
    dataset = _dataset()
    split = split_for_calibration(dataset, CLASSES, 0.0, seed=0)
    assert split.training is dataset and split.held_out == {}
    held = dataset["beta"].train
    assert split.calibration_images(held) == held  # calibrated on the training images
    assert "no calibration split" in split.describe("last task's training images")


def test_bad_fractions_and_tiny_classes_are_one_line_errors():
    for bad in (-0.1, 1.0, 2.0):
        with pytest.raises(DatasetError, match=r"\[0, 1\)"):
            check_fraction(bad)
    with pytest.raises(DatasetError, match="too few") as err:
        split_for_calibration(_dataset(n_train=1), CLASSES, 0.1, seed=0)
    assert "\n" not in str(err.value)


def _strategy(cls, split, **config):
    scenario = build_scenario("toy:3x1", list(CLASSES), None)
    return cls(build_config(cls.name, **config), scenario, split.training, 0,
               get_model_class("fastflow"))


def test_a_replayed_class_keeps_its_calibration_images():
    split = split_for_calibration(_dataset(), CLASSES, 0.1, seed=0)
    replay = _strategy(Replay, split, per_class=10)
    phases = replay.phases()
    for phase in phases:
        held = replay.training_samples(phase)
        replay.after_phase(None, phase)
    calibration = split.calibration_images(held)
    # the last task's 36 images + 10 of each old class; calibration: 4 of every class
    assert len(held) == 56 and len(calibration) == 12
    assert {s.class_name for s in calibration} == set(CLASSES)
    assert not _paths(held) & _paths(calibration)  # the buffer draws from the training part
    assert "10% calibration split" in split.describe(replay.holds)


def test_joint_calibrates_on_every_class():
    split = split_for_calibration(_dataset(), CLASSES, 0.1, seed=0)
    joint = _strategy(Joint, split)
    [phase] = joint.phases()
    held = joint.training_samples(phase)
    assert len(held) == 108 and len(split.calibration_images(held)) == 12
