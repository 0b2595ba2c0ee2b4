"""finetune: one model trained task after task on each task's images alone."""

from __future__ import annotations

from nfbench.benchmarks.running.strategies.base import Strategy, register_strategy


@register_strategy("finetune")
class Finetune(Strategy):
    """The base behaviour, unchanged: the lower bound of continual learning."""

    sort_rank = 0
