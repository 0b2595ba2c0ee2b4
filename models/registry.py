"""One registry for every model, native or reference, in the style of timm.

Models register with `@register_model("name")`. The built-in model packages are listed here
explicitly (no wildcard-import registration) and imported on first lookup, so importing the
registry stays cheap and a reference entry's heavy dependency (anomalib) loads only when used.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from importlib import metadata
from typing import Any

from nfbench.models.backbone import FeatureInfo
from nfbench.models.base import FlowADModel, ModelConfig

# Adding a model: create models/<name>/ with @register_model, then add its package here (the
# one registration line; packaging finds the folder by itself, see setup.py).
BUILTIN_MODEL_PACKAGES: tuple[str, ...] = (
    "nfbench.models.fastflow",
    "nfbench.models.cflow",
    "nfbench.models.csflow",
    "nfbench.models.uflow",
    "nfbench.models.hgad",
    "nfbench.models.ccnf",
    "nfbench.models.msflow",
    "nfbench.models.patchcore",
    "nfbench.models.reference",
)

_REGISTRY: dict[str, type[FlowADModel]] = {}
_LOADED = False


class UnknownModelError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def registering(registry: dict[str, type], kind: str, name: str) -> Callable[[type], type]:
    """Class decorator storing a class under `name` in `registry` (and as its `name`); another
    class under a taken name is an error, the same class again (a re-import) is not. Shared by
    the model and the strategy registries."""

    def wrap(cls: type) -> type:
        if name in registry and registry[name] is not cls:
            raise ValueError(f"{kind} '{name}' registered twice")
        cls.name = name
        registry[name] = cls
        return cls

    return wrap


def register_model(name: str) -> Callable[[type], type]:
    """Class decorator: make a FlowADModel subclass available under `name`."""
    return registering(_REGISTRY, "model", name)


def _load_builtins() -> None:
    """Import the built-in model packages, then any package that declares models under the
    `nfbench.models` entry-point group (a model of your own, in your own distribution)."""
    global _LOADED
    if not _LOADED:
        for package in BUILTIN_MODEL_PACKAGES:
            importlib.import_module(package)
        for entry in metadata.entry_points(group="nfbench.models"):
            entry.load()
        _LOADED = True


def available_models() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def get_model_class(name: str) -> type[FlowADModel]:
    _load_builtins()
    if name not in _REGISTRY:
        raise UnknownModelError(
            f"unknown model '{name}' (known: {', '.join(sorted(_REGISTRY))})"
        )
    return _REGISTRY[name]


def config_from_overrides(config_class: type, overrides: dict[str, Any], kind: str, name: str,
                          error: type[Exception]) -> Any:
    """A config dataclass's defaults with overrides applied; None overrides are dropped, and
    an option the class lacks raises `error` naming it. Shared by models and strategies."""
    known = {f.name for f in dataclasses.fields(config_class)}
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - known)
    if unknown:
        raise error(f"{kind} '{name}' has no option(s): {', '.join(unknown)}")
    return config_class(**given)


def build_config(name: str, **overrides: Any) -> ModelConfig:
    """The model's default config with overrides applied; None overrides are dropped."""
    return config_from_overrides(get_model_class(name).config_class, overrides, "model", name,
                                 UnknownModelError)


def create_model(name: str, features: FeatureInfo, **overrides: Any) -> FlowADModel:
    """Build a registered model from its name, the backbone's feature info and overrides."""
    return get_model_class(name)(build_config(name, **overrides), features)
