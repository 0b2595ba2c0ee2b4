"""Optional capabilities a model may have, as runtime-checkable protocols.

The model contract (models/base.py) is what every model must do: train and score. What only
some models can do is declared here, and generic code asks `isinstance(model, HasLatents)`
instead of calling a base-class method that raises for most models:

- HasLatents: per-level latent maps. With `gaussian_latents = True` on the class, the latents
  are N(0, I) under the normal model, so the a-contrario (NFA) threshold rule applies
  (benchmarks/measuring/thresholds.py); the t-SNE diagnostic uses them either way.
- HasThresholdRules: threshold rules of the model's own (benchmarks/measuring/thresholds.py
  `ThresholdRule` objects), reported next to the registered ones.
- HasRouting: task-agnostic models that pick a task (or class) before they score an image
  (CCNF's and HGAD's class posterior, PatchCore's nearest bank, IsoFlow's adapters) say per
  test image which one they picked, so the harness can measure routing accuracy.
- HasClassPosterior: the entropy of p(y|x) over seen classes (class-conditional models), for
  seed 001's entropy-change diagnostic.
Diagnostic parameter groups, the freeze-ablation groups and "own strategy equals finetune" are
class attributes and methods of the base class, with neutral defaults.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class HasLatents(Protocol):
    def latents(
        self, features: list[torch.Tensor], class_ids: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Per-level latent maps (B, C, h, w), finest level first."""
        ...


@runtime_checkable
class HasClassPosterior(Protocol):
    def posterior_entropy(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Per-image mean entropy of p(y|x) over seen classes (B,), in nats."""
        ...


@runtime_checkable
class HasThresholdRules(Protocol):
    def extra_threshold_rules(self) -> list:
        """ThresholdRule objects (benchmarks/measuring/thresholds.py) that only this model has."""
        ...


@runtime_checkable
class HasRouting(Protocol):
    def route(self, features: list[torch.Tensor]) -> torch.Tensor | None:
        """Per image (B,) a global class id of the task the model routes it to, as in
        task-agnostic scoring (the harness maps a class to its task); None where the model
        does not route in its current mode (one shared density, a single task so far)."""
        ...
