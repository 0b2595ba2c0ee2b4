"""replay: finetune plus a buffer of N training images per old class."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nfbench.benchmarks.running.strategies.base import (
    Phase,
    Strategy,
    StrategyConfig,
    register_strategy,
)
from nfbench.datasets.base import Sample
from nfbench.models.base import FlowADModel


@dataclass
class ReplayConfig(StrategyConfig):
    per_class: int = field(default=10, metadata={"help": "training images kept per old class"})


@register_strategy("replay")
class Replay(Strategy):
    """The buffer is drawn once per class (seeded) when the class's task ends, and joins every
    later phase's training images."""

    config_class = ReplayConfig
    holds = "last task's training images + replay buffer"
    sort_rank = 1

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rng = np.random.default_rng(self.seed)
        self.buffer: list[Sample] = []

    def training_samples(self, phase: Phase) -> list[Sample]:
        return super().training_samples(phase) + list(self.buffer)

    def after_phase(self, model: FlowADModel, phase: Phase) -> None:
        for name in phase.new_classes:
            train = self.dataset[name].train
            n = min(self.config.per_class, len(train))
            picks = self.rng.choice(len(train), size=n, replace=False)
            self.buffer.extend(train[i] for i in sorted(picks))
