"""The contract between the protocol runner and every flow model.

A model sees backbone features (never images) and, for class-conditional models, global class
ids. Training and scoring are separate methods with one return type each: no forward() that
changes meaning by mode. Hyperparameters live in the model's config dataclass, which also
generates its CLI flags (`--<model>.<field>`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from nfbench.models.backbone import FeatureInfo


@dataclass
class ModelConfig:
    """Training knobs every model has. Subclasses add their own fields (each becomes a flag)."""

    epochs: int = field(default=8, metadata={"help": "epochs per task"})
    batch_size: int = field(default=16, metadata={"help": "images per optimisation step"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
    weight_decay: float = field(default=1e-5, metadata={"help": "Adam weight decay"})
    grad_clip: float = field(default=0.0, metadata={"help": "max grad norm (0 = off)"})


@dataclass(frozen=True)
class TrainProgress:
    """Where training stands, for schedules (warm-ups, loss terms that join late)."""

    task_index: int
    epoch: int
    step: int  # optimisation steps since the start of the current task
    global_step: int  # optimisation steps since the model was built


@dataclass
class LossTerms:
    """The loss to minimise plus its named parts (floats, for logs and diagnostics)."""

    total: torch.Tensor
    parts: dict[str, float] = field(default_factory=dict)


@dataclass
class AnomalyOutput:
    """Per-pixel anomaly map at input resolution (B, H, W) and per-image score (B,)."""

    maps: torch.Tensor
    image_scores: torch.Tensor
    # HasRouting models that pick the task while they score (IsoFlow) may say which: per image
    # the class id route() would give, so the harness need not route a second time
    routed: torch.Tensor | None = None


class FlowADModel(nn.Module):
    """Base class for every registered model. Subclasses implement training_loss and score."""

    name: ClassVar[str] = "base"
    kind: ClassVar[str] = "native"  # "reference": another library's implementation, wrapped
    paper: ClassVar[str] = ""  # the source, for `nfbench list`
    is_flow: ClassVar[bool] = True  # False: a non-flow baseline (PatchCore), a reference ceiling
    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    class_conditional: ClassVar[bool] = False  # needs class ids at training time
    own_strategy: ClassVar[str | None] = None  # name of the model's own continual mechanism
    # True where the own mechanism acts under every strategy, so its cell would repeat
    # finetune's exactly (HGAD's growing centres); grids asking for 'own' then skip it.
    own_strategy_is_finetune: ClassVar[bool] = False
    # True where an image's score depends on the other images scored with it (a reference
    # entry that keeps its library's batch-wise normalisation). Native models never do: the
    # contract is that every score is a function of its own image only.
    batch_dependent_scores: ClassVar[bool] = False
    # a reference entry's measured departure from the paper's own code (one sentence, with the
    # figure), printed under compare.md's table so a gap is read with its cause
    known_deviation: ClassVar[str] = ""
    # True where latents() are N(0, I) under the normal model: the NFA threshold rule applies
    gaussian_latents: ClassVar[bool] = False
    # groups of diagnostic_groups() (by name prefix) frozen in the freeze ablation, e.g. HGAD's
    # {"NF": ("flow",), "GMM": ("mus", ...)}; empty: the model has no such ablation
    ablation_groups: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, config: ModelConfig, features: FeatureInfo) -> None:
        super().__init__()
        self.config = config
        self.features = features
        self.seen_classes: list[int] = []
        self.task_classes: list[list[int]] = []  # per training phase, its new classes

    # ---- continual hooks ----------------------------------------------------------------
    def start_task(self, task_index: int, new_classes: Sequence[int], strategy: str) -> None:
        """Called before training each task. Class-conditional models grow here."""
        while len(self.task_classes) <= task_index:
            self.task_classes.append([])
        known = self.task_classes[task_index]
        known.extend(c for c in dict.fromkeys(new_classes) if c not in known)
        for c in new_classes:
            if c not in self.seen_classes:
                self.seen_classes.append(c)

    def finish_task(self, features: list[torch.Tensor], class_ids: torch.Tensor) -> None:
        """Called once after a task's training with that task's training features (CPU,
        everything the learner holds: current task plus any replay buffer). Score references
        (CFLOW's and HGAD's map normalisation) and non-gradient fitting (memory banks) belong
        here, so a test image's score never depends on the other test images."""

    def iter_batches(
        self, features: list[torch.Tensor], class_ids: torch.Tensor | None, batch_size: int = 32
    ):
        """(features, class_ids) chunks moved to this model's device and dtype, in order."""
        anchor = next(iter(self.buffers()), None)
        anchor = next(self.parameters(), anchor)
        device = anchor.device if anchor is not None else features[0].device
        dtype = anchor.dtype if anchor is not None and anchor.is_floating_point() else None
        for lo in range(0, features[0].shape[0], batch_size):
            feats = [f[lo : lo + batch_size].to(device=device, dtype=dtype) for f in features]
            ids = None if class_ids is None else class_ids[lo : lo + batch_size].to(device)
            yield feats, ids

    def param_groups(self) -> list[dict]:
        """Optimiser groups over trainable parameters; override for per-group learning rates."""
        params = [p for p in self.parameters() if p.requires_grad]
        return [{"params": params}] if params else []

    def diagnostic_groups(self) -> dict[str, list[torch.Tensor]]:
        """Named parameter groups whose drift between tasks is worth tracking (diagnostics)."""
        return {"flow": [p for p in self.parameters()]}

    # ---- training and scoring -----------------------------------------------------------
    def training_loss(
        self, features: list[torch.Tensor], class_ids: torch.Tensor, progress: TrainProgress
    ) -> LossTerms:
        raise NotImplementedError

    def score(self, features: list[torch.Tensor], class_ids: torch.Tensor | None) -> AnomalyOutput:
        """Anomaly maps and image scores. class_ids is None in task-agnostic evaluation."""
        raise NotImplementedError

    # ---- shared helpers -----------------------------------------------------------------
    def upsample(self, maps: torch.Tensor) -> torch.Tensor:
        """(B, h, w) -> (B, H, W) at the input size, bilinear as in the reference models."""
        size = (self.features.input_size, self.features.input_size)
        return F.interpolate(maps.unsqueeze(1), size=size, mode="bilinear", align_corners=False)[
            :, 0
        ]


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts."""
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return total, trainable
