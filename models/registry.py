"""One registry for every model, native or reference, in the style of timm.

Models register with `@register_model("name")`. The built-in model packages are listed here
explicitly (no wildcard-import registration) and imported on first lookup, so importing the
registry stays cheap and a reference entry's heavy dependency (anomalib) loads only when used.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Any, Generic, TypeVar

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
    "nfbench.models.isoflow",
    "nfbench.models.patchcore",
    "nfbench.models.reference",
)

_LOADED = False
T = TypeVar("T")


class UnknownModelError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class Registry(Generic[T]):
    """Named components of one kind (models, strategies, executors, metrics, threshold rules):
    one mechanism for all of them, in the manner of lm-eval-harness's registry.

    Classes register with the `register(name)` decorator (which also sets `cls.name`);
    objects (a metric row, a threshold rule) with `add(name, obj)`. A second, different entry
    under a taken name is an error; the same entry again (a re-import) is not. Lookups of an
    unknown name raise `error` with the known names, as one line."""

    def __init__(self, kind: str, error: type[Exception] = KeyError) -> None:
        self.kind = kind
        self.error = error
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T, *, overwrite: bool = False) -> T:
        if name in self._entries and self._entries[name] is not entry and not overwrite:
            raise ValueError(f"{self.kind} '{name}' registered twice")
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[type], type]:
        """Class decorator: the class becomes available under `name`."""

        def wrap(cls: type) -> type:
            self.add(name, cls)  # type: ignore[arg-type]
            cls.name = name
            return cls

        return wrap

    def remove(self, name: str) -> None:
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise self.error(f"unknown {self.kind} '{name}' (known: {', '.join(self)})")
        return self._entries[name]

    def names(self) -> list[str]:
        return list(self._entries)

    def values(self) -> list[T]:
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


MODELS: Registry[type[FlowADModel]] = Registry("model", UnknownModelError)


def register_model(name: str) -> Callable[[type], type]:
    """Class decorator: make a FlowADModel subclass available under `name`."""
    return MODELS.register(name)


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
    return sorted(MODELS)


def get_model_class(name: str) -> type[FlowADModel]:
    _load_builtins()
    return MODELS.get(name)


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
