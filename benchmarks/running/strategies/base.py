"""The strategy contract: which data each training phase sees, and hooks around it.

A strategy is an object built per cell. It plans the phases (one per task, or one for joint),
says which training images each phase trains on, and may act before and after each phase
(replay fills its buffer after a task). Its knobs are a config dataclass, so every field is a
CLI flag `--<strategy>.<field>` as for models. A new strategy is one file with a registered
subclass plus its import line in strategies/__init__.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from nfbench.datasets.base import Dataset, Sample
from nfbench.datasets.scenarios import Scenario
from nfbench.models.base import FlowADModel
from nfbench.models.registry import config_from_overrides, registering


class StrategyError(ValueError):
    """A strategy that does not exist or does not fit the model: a one-line user error."""


@dataclass
class StrategyConfig:
    """Knobs of a strategy; subclasses add fields (each becomes `--<strategy>.<field>`)."""


@dataclass(frozen=True)
class Phase:
    """One training phase: fills R row `row` once trained."""

    row: int
    new_classes: tuple[str, ...]


class Strategy:
    """Finetune's behaviour; subclasses change what differs."""

    name: ClassVar[str] = "base"
    config_class: ClassVar[type[StrategyConfig]] = StrategyConfig
    # which normal training images the learner still holds after the last phase, in words
    holds: ClassVar[str] = "last task's training images"

    def __init__(self, config: StrategyConfig, scenario: Scenario, dataset: Dataset,
                 seed: int, model_class: type[FlowADModel]) -> None:
        self.config = config
        self.scenario = scenario
        self.dataset = dataset
        self.seed = seed
        self.model_class = model_class

    @property
    def label(self) -> str:
        """The strategy's name in records and tables."""
        return self.name

    @property
    def model_mode(self) -> str:
        """What the model's start_task receives (a model's own mechanism switches on here)."""
        return self.name

    def phases(self) -> list[Phase]:
        return [Phase(row=t, new_classes=tuple(task))
                for t, task in enumerate(self.scenario.tasks)]

    def training_samples(self, phase: Phase) -> list[Sample]:
        """The phase's normal training images: its new classes' training sets."""
        return [s for name in phase.new_classes for s in self.dataset[name].train]

    def max_steps(self, phase: Phase, samples: list[Sample], model: FlowADModel) -> int | None:
        """A cap on the phase's optimiser steps (None: the model's epochs decide)."""
        return None

    def before_phase(self, model: FlowADModel, phase: Phase) -> None:
        """Called after start_task, before training the phase."""

    def after_phase(self, model: FlowADModel, phase: Phase) -> None:
        """Called after the phase is trained and evaluated."""

    @classmethod
    def applies_to(cls, model_class: type[FlowADModel]) -> str | None:
        """None when the strategy can run with this model, else the reason it cannot."""
        return None


_REGISTRY: dict[str, type[Strategy]] = {}


def register_strategy(name: str) -> Callable[[type], type]:
    """Class decorator: make a Strategy subclass available under `name`."""
    return registering(_REGISTRY, "strategy", name)


def available_strategies() -> list[str]:
    return list(_REGISTRY)


def get_strategy_class(name: str, model_class: type[FlowADModel] | None = None) -> type[Strategy]:
    """The strategy registered as `name`; a model's own mechanism may be named by its own
    label (the model class's `own_strategy`) as well as by `own`."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if model_class is not None and name == model_class.own_strategy and "own" in _REGISTRY:
        return _REGISTRY["own"]
    model = f" for '{model_class.name}'" if model_class is not None else ""
    raise StrategyError(f"unknown strategy '{name}'{model} (choices: "
                        f"{', '.join(_REGISTRY)})")


def build_config(name: str, **overrides: Any) -> StrategyConfig:
    """The strategy's default config with overrides applied; None overrides are dropped."""
    return config_from_overrides(get_strategy_class(name).config_class, overrides, "strategy",
                                 name, StrategyError)
