"""One registry mechanism for models, strategies, executors, metrics and threshold rules."""

from __future__ import annotations

import pytest

from nfbench.benchmarks.running.strategies.base import register_strategy
from nfbench.models.registry import Registry, register_model


def test_a_taken_name_refuses_another_entry_but_not_the_same_one():
    registry: Registry[type] = Registry("widget")

    class First:
        pass

    class Second:
        pass

    assert registry.register("w")(First) is First
    assert registry.register("w")(First) is First  # a re-import is fine
    assert registry.names() == ["w"] and First.name == "w"
    with pytest.raises(ValueError, match="widget 'w' registered twice"):
        registry.register("w")(Second)
    assert registry.get("w") is First
    with pytest.raises(KeyError, match="unknown widget 'x' .known: w."):
        registry.get("x")


def test_objects_register_too_and_may_be_replaced_only_when_asked():
    registry: Registry[str] = Registry("rule", ValueError)
    registry.add("a", "first")
    with pytest.raises(ValueError, match="rule 'a' registered twice"):
        registry.add("a", "second")
    registry.add("a", "second", overwrite=True)
    assert registry.values() == ["second"] and "a" in registry and len(registry) == 1


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
