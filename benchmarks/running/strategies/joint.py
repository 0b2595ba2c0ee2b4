"""joint: one model trained once on every class at once, the upper bound.

Its training depends on the scenario's classes (and their order), never on how the scenario
groups them into tasks: scenarios with the same classes share one trained model (runner.py's
training key), and only the evaluation is grouped by each scenario's tasks."""

from __future__ import annotations

from nfbench.benchmarks.running.strategies.base import Phase, Strategy, register_strategy


@register_strategy("joint")
class Joint(Strategy):
    """One phase with every class, learnt as the model's task 0; only the last row of R is
    filled (no FM/BWT)."""

    holds = "all classes' training images (joint)"
    single_phase = True
    sort_rank = 9

    def phases(self) -> list[Phase]:
        return [Phase(row=self.scenario.num_tasks - 1, new_classes=self.scenario.classes,
                      task_index=0)]
