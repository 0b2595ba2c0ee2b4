"""own: the model's own continual mechanism, on finetune's data.

The mechanism lives in the model (it switches on when start_task receives its own strategy
label, e.g. a class-conditional flow freezes its flow after task 1); records name the cell by
that label.
"""

from __future__ import annotations

from nfbench.benchmarks.running.strategies.base import Strategy, register_strategy
from nfbench.models.base import FlowADModel


@register_strategy("own")
class Own(Strategy):
    @property
    def label(self) -> str:
        return self.model_class.own_strategy or "own"

    @property
    def model_mode(self) -> str:
        return self.label

    @classmethod
    def applies_to(cls, model_class: type[FlowADModel]) -> str | None:
        if model_class.own_strategy is None:
            return f"{model_class.name} has no continual mechanism of its own"
        return None
