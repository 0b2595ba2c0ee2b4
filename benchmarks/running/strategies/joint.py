"""joint: one model trained once on every class at once, the upper bound."""

from __future__ import annotations

from nfbench.benchmarks.running.strategies.base import Phase, Strategy, register_strategy


@register_strategy("joint")
class Joint(Strategy):
    """One phase with every class; only the last row of R is filled (no FM/BWT)."""

    holds = "all classes' training images (joint)"
    single_phase = True
    sort_rank = 9

    def phases(self) -> list[Phase]:
        return [Phase(row=self.scenario.num_tasks - 1, new_classes=self.scenario.classes)]
