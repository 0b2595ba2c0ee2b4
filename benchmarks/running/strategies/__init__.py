"""Continual strategies as registered objects (finetune, replay, joint, a model's own).

Adding one: a module here with a `@register_strategy("name")` Strategy subclass (see base.py),
and its import below. Its config fields become `--<name>.<field>` flags.
"""

from nfbench.benchmarks.running.strategies import finetune, joint, own, replay  # noqa: F401 (registers)
from nfbench.benchmarks.running.strategies.base import (
    Phase,
    Strategy,
    StrategyConfig,
    StrategyError,
    available_strategies,
    build_config,
    get_strategy_class,
    mechanism_strategy,
    register_strategy,
    strategy_of_label,
)

# the strategy a run uses when none is named, and the one a tuning or comparison run trains
# (one phase on every class: the quickest full fit)
DEFAULT_STRATEGY = "finetune"
ONE_PHASE_STRATEGY = "joint"

__all__ = [
    "DEFAULT_STRATEGY", "ONE_PHASE_STRATEGY", "Phase", "Strategy", "StrategyConfig",
    "StrategyError", "available_strategies", "build_config", "get_strategy_class",
    "mechanism_strategy", "register_strategy", "strategy_of_label",
]
