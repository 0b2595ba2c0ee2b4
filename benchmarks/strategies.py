"""Continual strategies as plans: which classes each training phase sees.

`finetune` trains one model task after task; `replay` adds a buffer of N training images per
old class; `joint` trains once on every class (the upper bound: only the last R row is filled).
A model's own mechanism (HGAD's growing centres, CCNF's frozen flow) sees the same data as
finetune; the model switches the mechanism on when `start_task` receives its strategy name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nfbench.datasets.base import Dataset, Sample
from nfbench.datasets.scenarios import Scenario

GENERIC_STRATEGIES = ("finetune", "replay", "joint")


class StrategyError(ValueError):
    """A strategy that does not exist or does not fit the model."""


@dataclass(frozen=True)
class Phase:
    """One training phase: fills R row `row` once trained."""

    row: int
    new_classes: tuple[str, ...]


def resolve_strategy(name: str, own_strategy: str | None, model_name: str) -> str:
    """Validate a strategy name for a model; 'own' means the model's own mechanism."""
    if name in GENERIC_STRATEGIES:
        return name
    if name == "own" or (own_strategy is not None and name == own_strategy):
        if own_strategy is None:
            raise StrategyError(f"model '{model_name}' has no continual mechanism of its own")
        return own_strategy
    choices = ", ".join((*GENERIC_STRATEGIES, "own") + ((own_strategy,) if own_strategy else ()))
    raise StrategyError(f"strategy '{name}' does not apply to '{model_name}' (choices: {choices})")


def plan_phases(strategy: str, scenario: Scenario) -> list[Phase]:
    if strategy == "joint":
        return [Phase(row=scenario.num_tasks - 1, new_classes=scenario.classes)]
    return [Phase(row=t, new_classes=tuple(task)) for t, task in enumerate(scenario.tasks)]


class ReplayBuffer:
    """N training images per old class, drawn once (seeded) when the class's task ends."""

    def __init__(self, per_class: int, seed: int) -> None:
        self.per_class = per_class
        self.rng = np.random.default_rng(seed)
        self.samples: list[Sample] = []

    def add_classes(self, dataset: Dataset, classes: tuple[str, ...]) -> None:
        for name in classes:
            train = dataset[name].train
            n = min(self.per_class, len(train))
            picks = self.rng.choice(len(train), size=n, replace=False)
            self.samples.extend(train[i] for i in sorted(picks))


def training_samples(
    strategy: str, phase: Phase, dataset: Dataset, buffer: ReplayBuffer | None
) -> list[Sample]:
    """The current phase's normal training images, plus the replay buffer where there is one."""
    current = [s for name in phase.new_classes for s in dataset[name].train]
    if strategy == "replay" and buffer is not None:
        return current + list(buffer.samples)
    return current
