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
from nfbench.models.registry import Registry, config_from_overrides


class StrategyError(ValueError):
    """A strategy that does not exist or does not fit the model: a one-line user error."""


@dataclass
class StrategyConfig:
    """Knobs of a strategy; subclasses add fields (each becomes `--<strategy>.<field>`)."""


@dataclass(frozen=True)
class Phase:
    """One training phase: fills R row `row` once trained. The model learns it as its task
    `task_index` (default: the row); joint's one phase is the model's first and only task
    whatever the scenario's task count, so its training does not depend on the scenario."""

    row: int
    new_classes: tuple[str, ...]
    task_index: int | None = None

    @property
    def model_task(self) -> int:
        return self.row if self.task_index is None else self.task_index


class Strategy:
    """Finetune's behaviour; subclasses change what differs."""

    name: ClassVar[str] = "base"
    config_class: ClassVar[type[StrategyConfig]] = StrategyConfig
    # which normal training images the learner still holds after the last phase, in words
    holds: ClassVar[str] = "last task's training images"
    # one phase on every class at once: R has one row, so no FM/BWT and no forgetting curve
    single_phase: ClassVar[bool] = False
    # where its rows sit in tables: lower first (finetune, replay, mechanisms, the upper bound)
    sort_rank: ClassVar[int] = 5
    # stands for each model's own continual mechanism (records name it by the model's label)
    model_mechanism: ClassVar[bool] = False

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

    @classmethod
    def equivalent_to(cls, model_class: type[FlowADModel]) -> str | None:
        """Another strategy whose cell this one would repeat exactly for the model, if any."""
        return None

    @classmethod
    def skip_reason(cls, model_class: type[FlowADModel]) -> str | None:
        """Why a grid skips this strategy's cell for the model (it cannot run, or it would
        repeat another cell exactly), else None. A single-model grid turns `applies_to`'s
        reason into an error instead."""
        return cls.applies_to(model_class)

    @classmethod
    def label_for(cls, model_class: type[FlowADModel]) -> str:
        """The strategy's name in the model's records and tables."""
        return cls.name


STRATEGIES: Registry[type[Strategy]] = Registry("strategy", StrategyError)


def register_strategy(name: str) -> Callable[[type], type]:
    """Class decorator: make a Strategy subclass available under `name`."""
    return STRATEGIES.register(name)


def available_strategies() -> list[str]:
    return STRATEGIES.names()


def get_strategy_class(name: str, model_class: type[FlowADModel] | None = None) -> type[Strategy]:
    """The strategy registered as `name`; a model's own mechanism may be named by its own
    label (the model class's `own_strategy`) as well as by `own`."""
    if name in STRATEGIES:
        return STRATEGIES.get(name)
    if model_class is not None and name == model_class.own_strategy and "own" in STRATEGIES:
        return STRATEGIES.get("own")
    model = f" for '{model_class.name}'" if model_class is not None else ""
    raise StrategyError(f"unknown strategy '{name}'{model} (choices: "
                        f"{', '.join(STRATEGIES)})")


def strategy_of_label(label: str) -> type[Strategy]:
    """The strategy behind a record's label: its own name, or a model's mechanism label."""
    if label in STRATEGIES:
        return STRATEGIES.get(label)
    mechanism = [s for s in STRATEGIES.values() if s.model_mechanism]
    if not mechanism:
        raise StrategyError(f"unknown strategy '{label}'")
    return mechanism[0]


def mechanism_strategy() -> str:
    """The name of the strategy that runs each model's own mechanism."""
    return strategy_of_label("").name


def build_config(name: str, **overrides: Any) -> StrategyConfig:
    """The strategy's default config with overrides applied; None overrides are dropped."""
    return config_from_overrides(get_strategy_class(name).config_class, overrides, "strategy",
                                 name, StrategyError)
