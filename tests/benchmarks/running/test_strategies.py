"""Strategies are registered objects: a new one is one class, with no edit elsewhere."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from nfbench.benchmarks.running import protocol
from nfbench.benchmarks.running.runner import run_grid
from nfbench.benchmarks.running.strategies import (
    Strategy,
    StrategyError,
    available_strategies,
    get_strategy_class,
    register_strategy,
)
from nfbench.benchmarks.running.strategies import base as strategy_base
from nfbench.benchmarks.running.strategies.replay import Replay
from nfbench.models.registry import get_model_class

pytestmark = pytest.mark.slow


def test_builtin_strategies_and_own_labels():
    assert set(available_strategies()) == {"finetune", "replay", "joint", "own"}
    ccnf = get_model_class("ccnf")
    assert get_strategy_class("ccnf", ccnf).name == "own"  # a model's own mechanism by label
    assert get_strategy_class("own").applies_to(get_model_class("fastflow")) is not None
    with pytest.raises(StrategyError, match="unknown strategy 'sideways'"):
        get_strategy_class("sideways")


def _spy_steps(monkeypatch) -> list[int]:
    steps: list[int] = []
    real = protocol.train_phase

    def spy(*args, **kwargs):
        stats = real(*args, **kwargs)
        steps.append(stats.steps)
        return stats

    monkeypatch.setattr(protocol, "train_phase", spy)
    return steps


def test_a_strategy_defined_here_runs_without_edits_elsewhere(tiny_request, monkeypatch):
    registry = strategy_base.STRATEGIES
    monkeypatch.setattr(registry, "_entries", dict(registry._entries))

    @register_strategy("replay_equal_steps")
    class ReplayEqualSteps(Replay):
        """Replay with as many optimiser steps as finetune: the buffer adds data, not steps."""

        def max_steps(self, phase, samples, model):
            current = len(Strategy.training_samples(self, phase))
            return model.config.epochs * (current // min(model.config.batch_size, current))

    steps = _spy_steps(monkeypatch)
    request = dataclasses.replace(
        tiny_request, strategies=["finetune", "replay", "replay_equal_steps"],
        strategy_overrides={"replay": {"per_class": 3}, "replay_equal_steps": {"per_class": 3}},
        calibration_split=0.0)  # every training image trains: the step counts below
    finetune, replay, equal = run_grid(request, show_progress=False)
    assert equal.ok and equal.strategy == "replay_equal_steps"
    assert equal.run_settings["strategy"] == {"per_class": 3}
    # tiny set: 6 images per class, batch 3, 2 epochs -> finetune 4 steps per task; replay's
    # second task has 6 + 3 images -> 6 steps; the capped variant keeps 4
    assert steps == [4, 4, 4, 6, 4, 4]
    scores = [pd.read_csv(request.results_dir / r.scores["csv"])["image_score"]
              for r in (replay, equal)]
    assert not np.allclose(*scores)  # fewer steps, another model


def test_strategy_flags_are_validated(tiny_request):
    bad = dataclasses.replace(tiny_request, strategy_overrides={"replay": {"per_klass": 2}},
                              strategies=["replay"])
    with pytest.raises(StrategyError, match="per_klass"):
        run_grid(bad, show_progress=False)
    stray = dataclasses.replace(tiny_request, strategy_overrides={"replay": {"per_class": 2}})
    with pytest.raises(StrategyError, match="not in the run: replay"):
        run_grid(stray, show_progress=False)
