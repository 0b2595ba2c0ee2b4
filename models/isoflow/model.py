"""IsoFlow: parameter isolation for a coupling flow, in the manner of DeCoFlow (arXiv
2606.26687). The base is FastFlow's design (per-level 2D affine couplings, subnets
alternating 3x3 and 1x1 convolutions, a LayerNorm in front), the strongest flow on the bench.

Own mechanism ("isoflow"): task 1 trains the base with its adapter; every later task freezes
the base and all earlier tasks' pieces and trains only its own low-rank adapters (inside
every coupling subnet), its channel alignment and its auxiliary couplings. A test image is
routed to the task whose pieces give it the highest likelihood, then scored with them; with
class ids (task-aware, oracle routing) the class's own task is used, so a task's scores never
change after it is learned (FM = 0). Under every other strategy there is one set of pieces,
trained with the base throughout: the same flow, no isolation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from nfbench.models.backbone import FeatureInfo
from nfbench.models.base import AnomalyOutput, FlowADModel, LossTerms, ModelConfig, TrainProgress
from nfbench.models.fastflow.anomaly_map import fastflow_anomaly_map
from nfbench.models.isoflow.anomaly_map import image_log_likelihood
from nfbench.models.isoflow.coupling import IsoFlowLevel
from nfbench.models.isoflow.loss import isoflow_loss
from nfbench.models.registry import register_model


@dataclass
class IsoFlowConfig(ModelConfig):
    flow_steps: int = field(default=8, metadata={"help": "base couplings per level"})
    hidden_ratio: float = field(default=1.0, metadata={"help": "subnet width / input channels"})
    clamp: float = field(default=2.0, metadata={"help": "soft clamp of the coupling log-scale"})
    rank: int = field(
        default=8, metadata={"help": "rank of each subnet conv's per-task adapter (0 = none)"})
    alignment: bool = field(
        default=True, metadata={"help": "per-task channel alignment in front of the base"})
    aux_blocks: int = field(
        default=2, metadata={"help": "auxiliary per-task couplings per level (0 = off)"})
    tail_weight: float = field(
        default=1.0, metadata={"help": "extra weight of the NLL's tail positions (0 = off)"})
    tail_fraction: float = field(
        default=0.05, metadata={"help": "share of each image's positions that is its tail"})

    def __post_init__(self) -> None:
        if self.rank < 0 or self.aux_blocks < 0 or self.flow_steps < 1:
            raise ValueError("isoflow rank and aux_blocks must be >= 0, flow_steps >= 1")
        if not 0 < self.tail_fraction <= 1:
            raise ValueError(f"isoflow tail_fraction must be in (0, 1]: {self.tail_fraction}")


@register_model("isoflow")
class IsoFlow(FlowADModel):
    config_class = IsoFlowConfig
    paper = "nfbench, in the manner of DeCoFlow (arXiv:2606.26687, 2026)"
    own_strategy = "isoflow"
    gaussian_latents = True  # under the routed (or given) task

    def __init__(self, config: IsoFlowConfig, features: FeatureInfo) -> None:
        super().__init__(config, features)
        self.config: IsoFlowConfig = config
        self.levels = nn.ModuleList(
            IsoFlowLevel(c, s, config.flow_steps, config.hidden_ratio, config.clamp, config.rank,
                         config.alignment, config.aux_blocks, seed=i)
            for i, (c, s) in enumerate(zip(features.channels, features.sizes, strict=True)))
        self._add_task()
        self.isolating = False  # True under the own strategy
        self.active = 0  # the task whose pieces train

    # ---- continual hooks ----------------------------------------------------------------
    @property
    def num_tasks(self) -> int:
        """Sets of per-task pieces held."""
        return len(self.levels[0].aux)

    def _add_task(self) -> None:
        for level in self.levels:
            level.add_task()

    def start_task(self, task_index: int, new_classes: Sequence[int], strategy: str) -> None:
        """Own strategy: task t > 0 gets its own pieces and trains them alone."""
        super().start_task(task_index, new_classes, strategy)
        self.isolating = strategy == self.own_strategy
        self.active = task_index if self.isolating else 0
        while self.num_tasks <= self.active:
            self._add_task()
        self.requires_grad_(not self.isolating or self.active == 0)
        for p in self.task_parameters(self.active):
            p.requires_grad_(True)

    def task_parameters(self, task: int) -> list[nn.Parameter]:
        """The pieces of one task: its adapters, alignment and auxiliary couplings."""
        return [p for level in self.levels for p in level.task_parameters(task)]

    def diagnostic_groups(self) -> dict[str, list[torch.Tensor]]:
        pieces = {id(p) for t in range(self.num_tasks) for p in self.task_parameters(t)}
        groups = {"base": [p for p in self.parameters() if id(p) not in pieces]}
        for t in range(self.num_tasks):
            groups[f"task{t}"] = self.task_parameters(t)
        return groups

    # ---- flow ---------------------------------------------------------------------------
    def encode(self, features: list[torch.Tensor], task: int
               ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Latents and log|det| per position, per level, under one task's pieces."""
        out = [level(f, task) for f, level in zip(features, self.levels, strict=True)]
        return [z for z, _ in out], [ld for _, ld in out]

    def training_loss(
        self, features: list[torch.Tensor], class_ids: torch.Tensor, progress: TrainProgress
    ) -> LossTerms:
        latents, log_dets = self.encode(features, self.active)
        cfg = self.config
        loss = isoflow_loss(latents, log_dets, cfg.tail_fraction, cfg.tail_weight)
        return LossTerms(loss, {"nll": float(loss.detach())})

    # ---- routing and scoring --------------------------------------------------------------
    def _routes(self) -> bool:
        return self.isolating and self.num_tasks > 1

    def _encode_all(self, features: list[torch.Tensor]
                    ) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
        """(T, B) each image's log-likelihood under every task's pieces, and the latents."""
        encoded = [self.encode(features, t) for t in range(self.num_tasks)]
        return torch.stack([image_log_likelihood(*e) for e in encoded]), [z for z, _ in encoded]

    @torch.no_grad()
    def route_tasks(self, features: list[torch.Tensor]) -> torch.Tensor:
        """(B,) the task whose pieces give each image the highest log-likelihood."""
        if not self._routes():
            return torch.zeros(features[0].shape[0], dtype=torch.long,
                               device=features[0].device)
        return self._encode_all(features)[0].argmax(dim=0)

    def _first_classes(self, device: torch.device) -> torch.Tensor:
        """(T,) one class id per task: how a routed task is named to the harness."""
        return torch.tensor([self.task_classes[t][0] for t in range(self.num_tasks)],
                            device=device)

    def route(self, features: list[torch.Tensor]) -> torch.Tensor | None:
        """HasRouting: per image a class id of the task it is routed to (None outside the own
        strategy: one set of pieces, nothing to route)."""
        if not self.isolating:
            return None
        return self._first_classes(features[0].device)[self.route_tasks(features)]

    def _tasks_for(self, features: list[torch.Tensor], class_ids: torch.Tensor | None
                   ) -> torch.Tensor:
        """Given class ids: their own task (oracle routing); otherwise the routed task."""
        if class_ids is None or not self._routes():
            return self.route_tasks(features)
        owner = {c: t for t, classes in enumerate(self.task_classes[: self.num_tasks])
                 for c in classes}
        tasks = torch.tensor([owner.get(c, -1) for c in class_ids.tolist()], dtype=torch.long,
                             device=features[0].device)
        unknown = tasks < 0  # a class no task has learned: routed like any other image
        return torch.where(unknown, self.route_tasks(features), tasks) if unknown.any() else tasks

    @torch.no_grad()
    def latents(
        self, features: list[torch.Tensor], class_ids: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Per-level latents (B, C, h, w) under each image's task: N(0, I) if it is normal."""
        tasks = self._tasks_for(features, class_ids)
        out = [torch.empty_like(f) for f in features]
        for t in tasks.unique().tolist():
            rows = tasks == t
            for i, z in enumerate(self.encode([f[rows] for f in features], t)[0]):
                out[i][rows] = z
        return out

    @torch.no_grad()
    def score(self, features: list[torch.Tensor], class_ids: torch.Tensor | None) -> AnomalyOutput:
        """Task-agnostic and routing: every task's pieces encode the batch once, the most
        likely task's latents are scored and the route is returned with them (the harness's
        routing accuracy then costs nothing more)."""
        if class_ids is not None or not self._routes():
            return self._scored(self.latents(features, class_ids))
        log_likelihood, latents = self._encode_all(features)
        tasks = log_likelihood.argmax(dim=0)
        rows = torch.arange(tasks.shape[0], device=tasks.device)
        chosen = [torch.stack([z[i] for z in latents])[tasks, rows]
                  for i in range(len(features))]
        out = self._scored(chosen)
        out.routed = self._first_classes(tasks.device)[tasks]
        return out

    def _scored(self, latents: list[torch.Tensor]) -> AnomalyOutput:
        maps = fastflow_anomaly_map(latents, self.features.input_size)
        return AnomalyOutput(maps=maps, image_scores=maps.flatten(1).amax(dim=1))
