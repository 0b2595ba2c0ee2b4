"""The registry decorator shared by models and strategies: a name holds one class."""

from __future__ import annotations

import pytest

from nfbench.benchmarks.running.strategies.base import register_strategy
from nfbench.models.registry import register_model, registering


def test_a_taken_name_refuses_another_class_but_not_the_same_one():
    registry: dict[str, type] = {}

    class First:
        pass

    class Second:
        pass

    assert registering(registry, "widget", "w")(First) is First
    assert registering(registry, "widget", "w")(First) is First  # a re-import is fine
    assert registry == {"w": First} and First.name == "w"
    with pytest.raises(ValueError, match="widget 'w' registered twice"):
        registering(registry, "widget", "w")(Second)
    assert registry == {"w": First}


@pytest.mark.parametrize(("decorator", "taken", "kind"),
                         [(register_model, "fastflow", "model"),
                          (register_strategy, "replay", "strategy")])
def test_models_and_strategies_refuse_a_second_class_under_a_taken_name(decorator, taken, kind):
    from nfbench.models.registry import get_model_class

    get_model_class("fastflow")  # loads the built-in models
    with pytest.raises(ValueError, match=f"{kind} '{taken}' registered twice"):
        decorator(taken)(type("Impostor", (), {}))


def test_models_and_strategies_name_an_unknown_option():
    from nfbench.benchmarks.running.strategies.base import StrategyError
    from nfbench.benchmarks.running.strategies.base import build_config as strategy_config
    from nfbench.models.registry import UnknownModelError, build_config

    assert build_config("fastflow", epochs=3, lr=None).epochs == 3  # None keeps the default
    with pytest.raises(UnknownModelError, match="model 'fastflow' has no option.s.: nope"):
        build_config("fastflow", nope=1)
    with pytest.raises(StrategyError, match="strategy 'replay' has no option.s.: nope"):
        strategy_config("replay", nope=1)
