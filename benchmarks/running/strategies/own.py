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
    model_mechanism = True

    @property
    def label(self) -> str:
        return self.label_for(self.model_class)

    @classmethod
    def label_for(cls, model_class: type[FlowADModel]) -> str:
        return model_class.own_strategy or cls.name

    @classmethod
    def equivalent_to(cls, model_class: type[FlowADModel]) -> str | None:
        return "finetune" if model_class.own_strategy_is_finetune else None

    @classmethod
    def skip_reason(cls, model_class: type[FlowADModel]) -> str | None:
        """A model without a mechanism, or whose mechanism acts under every strategy (its
        cell would repeat finetune exactly), gets a skipped cell that says why."""
        if model_class.own_strategy is not None and model_class.own_strategy_is_finetune:
            return (f"{model_class.name}'s own mechanism ({model_class.own_strategy}) acts "
                    "under every strategy, so its cell would repeat finetune exactly")
        return cls.applies_to(model_class)

    @property
    def model_mode(self) -> str:
        return self.label

    @classmethod
    def applies_to(cls, model_class: type[FlowADModel]) -> str | None:
        if model_class.own_strategy is None:
            return f"{model_class.name} has no continual mechanism of its own"
        return None
