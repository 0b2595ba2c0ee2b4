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
    register_strategy,
)

__all__ = [
    "Phase", "Strategy", "StrategyConfig", "StrategyError", "available_strategies",
    "build_config", "get_strategy_class", "register_strategy",
]
