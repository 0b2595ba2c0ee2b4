"""Named splits against literal task lists, custom tasks, and the errors users will hit."""

from __future__ import annotations

import pytest

from nfbench.datasets.base import DatasetError
from nfbench.datasets.scenarios import (
    MVTEC_CLASSES,
    VISA_CLASSES,
    Scenario,
    build_scenario,
    parse_custom_tasks,
    parse_split,
)

MVTEC = list(MVTEC_CLASSES)
VISA = list(VISA_CLASSES)
MVTEC_BASE10 = [
    "bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut", "pill",
    "screw",
]  # fmt: skip
VISA_BASE8 = [
    "candle", "capsules", "cashew", "chewinggum", "fryum", "macaroni1", "macaroni2", "pcb1",
]  # fmt: skip


def test_class_lists_are_alphabetical_and_complete() -> None:
    assert MVTEC == sorted(MVTEC) and len(MVTEC) == 15
    assert VISA == sorted(VISA) and len(VISA) == 12


def test_mvtec_15x1() -> None:
    assert parse_split("15x1", MVTEC) == [[c] for c in MVTEC]


def test_mvtec_14_1() -> None:
    assert parse_split("14-1", MVTEC) == [MVTEC[:14], ["zipper"]]


def test_mvtec_10_5() -> None:
    assert parse_split("10-5", MVTEC) == [
        MVTEC_BASE10,
        ["tile", "toothbrush", "transistor", "wood", "zipper"],
    ]


def test_mvtec_3x5() -> None:
    assert parse_split("3x5", MVTEC) == [
        ["bottle", "cable", "capsule", "carpet", "grid"],
        ["hazelnut", "leather", "metal_nut", "pill", "screw"],
        ["tile", "toothbrush", "transistor", "wood", "zipper"],
    ]


def test_mvtec_10_1x5() -> None:
    assert parse_split("10-1x5", MVTEC) == [
        MVTEC_BASE10,
        ["tile"],
        ["toothbrush"],
        ["transistor"],
        ["wood"],
        ["zipper"],
    ]


def test_visa_splits() -> None:
    assert parse_split("12x1", VISA) == [[c] for c in VISA]
    assert parse_split("11-1", VISA) == [VISA[:11], ["pipe_fryum"]]
    assert parse_split("8-4", VISA) == [VISA_BASE8, ["pcb2", "pcb3", "pcb4", "pipe_fryum"]]
    assert parse_split("8-1x4", VISA) == [
        VISA_BASE8,
        ["pcb2"],
        ["pcb3"],
        ["pcb4"],
        ["pipe_fryum"],
    ]


def test_split_sorts_the_classes_it_is_given() -> None:
    assert parse_split("2x1", ["b", "a"]) == [["a"], ["b"]]
    assert parse_split(" 1-1 ", ["b", "a"]) == [["a"], ["b"]]


@pytest.mark.parametrize(
    "split",
    ["10-3", "10-1x4", "10-1x6", "4x4", "16x1", "15-1", "0x1", "15x0", "abc", "", "10-0"],
)
def test_split_errors(split: str) -> None:
    with pytest.raises(DatasetError):
        parse_split(split, MVTEC)


def test_split_error_says_why() -> None:
    with pytest.raises(DatasetError, match="10-3.*15"):
        parse_split("10-3", MVTEC)
    with pytest.raises(DatasetError, match="uses 14 classes but the dataset has 15"):
        parse_split("10-1x4", MVTEC)


def test_custom_tasks() -> None:
    assert parse_custom_tasks("bottle,cable;capsule", MVTEC) == [["bottle", "cable"], ["capsule"]]
    assert parse_custom_tasks(" zipper ; bottle , wood ", MVTEC) == [["zipper"], ["bottle", "wood"]]


def test_custom_task_errors() -> None:
    with pytest.raises(DatasetError, match=r"unknown class 'bottel'.*known: bottle, cable"):
        parse_custom_tasks("bottel;cable", MVTEC)
    with pytest.raises(DatasetError, match="'cable' appears twice"):
        parse_custom_tasks("bottle,cable;cable", MVTEC)
    with pytest.raises(DatasetError, match="empty task"):
        parse_custom_tasks("bottle;;cable", MVTEC)


def test_build_scenario() -> None:
    sc = build_scenario("mvtec:10-5", MVTEC)
    assert sc == Scenario("mvtec:10-5", (tuple(MVTEC_BASE10), tuple(MVTEC[10:])))
    assert sc.num_tasks == 2 and sc.classes == MVTEC
    assert sc.task_of("bottle") == 0 and sc.task_of("zipper") == 1
    with pytest.raises(DatasetError):
        sc.task_of("candle")


def test_build_scenario_defaults_to_one_class_per_task() -> None:
    names = ["brick", "capsule", "circuit", "grass", "gravel", "plaid"]
    sc = build_scenario("synthetic", names)
    assert sc.name == "synthetic:6x1" and sc.num_tasks == 6
    assert build_scenario("synthetic:6x1", names).tasks == sc.tasks
    assert build_scenario("synthetic:2x3", names).tasks == (tuple(names[:3]), tuple(names[3:]))


def test_custom_tasks_win_over_the_split() -> None:
    sc = build_scenario("mvtec:15x1", MVTEC, custom_tasks="bottle,cable;capsule")
    assert sc.name == "mvtec:custom"
    assert sc.tasks == (("bottle", "cable"), ("capsule",))
    assert sc.classes == ["bottle", "cable", "capsule"]


def test_build_scenario_errors() -> None:
    with pytest.raises(DatasetError):
        build_scenario(":15x1", MVTEC)
    with pytest.raises(DatasetError):
        build_scenario("visa:8-4", MVTEC)
    with pytest.raises(DatasetError, match="unknown class 'pcb9'"):
        build_scenario("visa", VISA, custom_tasks="pcb9")
