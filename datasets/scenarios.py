"""Continual scenarios: an ordered list of tasks, each a tuple of class names.

Named splits follow the X-Y(xN) notation of the class-incremental literature and always use
the classes in alphabetical order, so "mvtec:10-5" means the same thing in every paper table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nfbench.datasets.base import DatasetError

MVTEC_CLASSES: tuple[str, ...] = (
    "bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut",
    "pill", "screw", "tile", "toothbrush", "transistor", "wood", "zipper",
)  # fmt: skip
VISA_CLASSES: tuple[str, ...] = (
    "candle", "capsules", "cashew", "chewinggum", "fryum", "macaroni1", "macaroni2",
    "pcb1", "pcb2", "pcb3", "pcb4", "pipe_fryum",
)  # fmt: skip

_NXM = re.compile(r"^(\d+)x(\d+)$")  # N tasks of M classes
_X_Y = re.compile(r"^(\d+)-(\d+)$")  # X base classes, then Y per task until none are left
_X_YXN = re.compile(r"^(\d+)-(\d+)x(\d+)$")  # X base classes, then N tasks of Y classes


@dataclass(frozen=True)
class Scenario:
    """A named, ordered stream of tasks; task t trains only on the classes of tasks[t]."""

    name: str
    tasks: tuple[tuple[str, ...], ...]

    @property
    def classes(self) -> list[str]:
        """Every class, in the order the stream introduces them."""
        return [c for task in self.tasks for c in task]

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    def task_of(self, class_name: str) -> int:
        """Index of the task that introduces a class (for the task-aware oracle and R[t, k])."""
        for t, task in enumerate(self.tasks):
            if class_name in task:
                return t
        raise DatasetError(f"class '{class_name}' is in no task of scenario {self.name}")


def _chunks(classes: list[str], sizes: list[int]) -> list[list[str]]:
    out, start = [], 0
    for n in sizes:
        out.append(classes[start : start + n])
        start += n
    return out


def parse_split(split: str, classes: list[str]) -> list[list[str]]:
    """Turn split notation ("15x1", "14-1", "10-5", "10-1x5") into tasks over sorted classes.

    A split must use every class exactly once; anything else is an error rather than a
    silently shorter stream (use custom tasks for a subset).
    """
    ordered = sorted(classes)
    n = len(ordered)
    s = split.strip().lower()
    if not ordered:
        raise DatasetError(f"split '{split}': the dataset has no classes")
    if m := _NXM.match(s):
        n_tasks, per = int(m[1]), int(m[2])
        sizes = [per] * n_tasks
    elif m := _X_YXN.match(s):
        base, per, steps = int(m[1]), int(m[2]), int(m[3])
        sizes = [base] + [per] * steps
    elif m := _X_Y.match(s):
        base, per = int(m[1]), int(m[2])
        if per < 1 or base >= n or (n - base) % per:
            raise DatasetError(
                f"split '{split}' does not divide {n} classes: {n} - {base} base classes "
                f"is not a positive multiple of {per}"
            )
        sizes = [base] + [per] * ((n - base) // per)
    else:
        raise DatasetError(
            f"unknown split '{split}' (expected NxM like 15x1, X-Y like 10-5, or X-YxN like 10-1x5)"
        )
    if not sizes or min(sizes) < 1:
        raise DatasetError(f"split '{split}': every task needs at least one class")
    if sum(sizes) != n:
        raise DatasetError(
            f"split '{split}' uses {sum(sizes)} classes but the dataset has {n} "
            f"(use custom tasks for a subset)"
        )
    return _chunks(ordered, sizes)


def parse_custom_tasks(text: str, known_classes: list[str]) -> list[list[str]]:
    """Parse "bottle,cable;capsule": tasks separated by ';', classes by ','; order kept as given."""
    known = list(known_classes)
    tasks: list[list[str]] = []
    seen: set[str] = set()
    for part in text.split(";"):
        task = [c.strip() for c in part.split(",") if c.strip()]
        if not task:
            raise DatasetError(f"custom tasks '{text}': empty task")
        for c in task:
            if c not in known:
                raise DatasetError(
                    f"unknown class '{c}' in custom tasks (known: {', '.join(known)})"
                )
            if c in seen:
                raise DatasetError(f"class '{c}' appears twice in custom tasks '{text}'")
            seen.add(c)
        tasks.append(task)
    return tasks


def build_scenario(spec: str, classes: list[str], custom_tasks: str | None = None) -> Scenario:
    """Build a scenario from "<dataset>[:<split>]"; custom tasks win over the split.

    No split means one class per task (so "synthetic" follows its class count).
    """
    dataset, _, split = spec.strip().partition(":")
    dataset = dataset.strip()
    split = split.strip()
    if not dataset:
        raise DatasetError(f"scenario '{spec}' names no dataset (expected e.g. mvtec:15x1)")
    if custom_tasks is not None and custom_tasks.strip():
        tasks = parse_custom_tasks(custom_tasks, classes)
        return Scenario(f"{dataset}:custom", tuple(tuple(t) for t in tasks))
    if not split:
        split = f"{len(classes)}x1"
    tasks = parse_split(split, classes)
    return Scenario(f"{dataset}:{split}", tuple(tuple(t) for t in tasks))
