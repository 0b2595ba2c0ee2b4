"""PatchCore as a plain nn.Module: a memory bank of locally aware patch features, subsampled by
a greedy coreset, scored by nearest-neighbour distance. No trainable parameters: everything is
fitted in finish_task, and the bank is a buffer (it moves with .to() and counts in state_dict).

Continual behaviour: under finetune, replay and joint the bank is rebuilt from what finish_task
receives; under the own strategy ("patchcore") each task's coreset is appended and every
task's rows are kept, searched together (task-agnostic: the nearest row over all tasks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch.nn import functional as F

from nfbench.models.backbone import FeatureInfo
from nfbench.models.base import AnomalyOutput, FlowADModel, LossTerms, ModelConfig, TrainProgress
from nfbench.models.patchcore.anomaly_map import (
    nearest_neighbours,
    patchcore_anomaly_map,
    reweighted_scores,
)
from nfbench.models.patchcore.coreset import coreset_size, greedy_coreset_indices
from nfbench.models.registry import register_model

OWN_STRATEGY = "patchcore"


@dataclass
class PatchCoreConfig(ModelConfig):
    epochs: int = field(default=0, metadata={"help": "unused: PatchCore has no training"})
    levels: str = field(
        default="-2,-1",
        metadata={"help": "harness levels concatenated (comma list, negative = from the "
                          "deepest); the finest named sets the patch grid"},
    )
    neighbourhood: int = field(default=3, metadata={"help": "local average window p (odd)"})
    coreset_ratio: float = field(
        default=0.1, metadata={"help": "fraction of patch features kept by the coreset"}
    )
    projection_dim: int = field(
        default=128, metadata={"help": "random projection size for the coreset (0 = none)"}
    )
    blur_sigma: float = field(default=4.0, metadata={"help": "Gaussian blur of the map (px)"})
    reweight_neighbors: int = field(
        default=0, metadata={"help": "b of the paper's image-score re-weighting (0 = max)"}
    )
    chunk_size: int = field(
        default=4096, metadata={"help": "queries and bank rows per cdist block"}
    )


def parse_levels(text: str, num_levels: int) -> list[int]:
    """'-2,-1' -> sorted distinct non-negative level indices (finest first)."""
    try:
        picked = sorted({int(p) % num_levels for p in text.split(",") if p.strip()})
    except ValueError as err:
        raise ValueError(f"patchcore levels must be integers, got '{text}'") from err
    if not picked:
        raise ValueError("patchcore needs at least one level")
    return picked


class MemoryBankModel(FlowADModel):
    """What every training-free memory-bank entry shares (native PatchCore and anomalib's):
    no parameters, so no loss and no drift groups; the bank is fitted in finish_task with a
    coreset seed per task, drawn once from the global RNG (the harness seeds it with the
    cell's seed), so a cell is reproducible and its seeds differ."""

    is_flow = False  # a training-free baseline: the leaderboard's reference ceiling
    seed: int
    _task: int = 0

    def draw_seed(self) -> None:
        """Called by a subclass once its own construction has drawn what it draws."""
        self.seed = int(torch.randint(0, 2**31 - 1, (1,)))

    @property
    def fit_seed(self) -> int:
        """The coreset seed of the current task."""
        return self.seed + self._task

    def start_task(self, task_index: int, new_classes: Sequence[int], strategy: str) -> None:
        super().start_task(task_index, new_classes, strategy)
        self._task = task_index

    def training_loss(
        self, features: list[torch.Tensor], class_ids: torch.Tensor, progress: TrainProgress
    ) -> LossTerms:
        """Never needed (no parameters, so the trainer takes no steps): a zero loss."""
        return LossTerms(features[0].new_zeros(()), {})

    def diagnostic_groups(self) -> dict[str, list[torch.Tensor]]:
        return {}


@register_model("patchcore")
class PatchCore(MemoryBankModel):
    config_class = PatchCoreConfig
    paper = "Roth et al., PatchCore, CVPR 2022"
    own_strategy = OWN_STRATEGY

    memory_bank: torch.Tensor
    task_sizes: torch.Tensor

    def __init__(self, config: PatchCoreConfig, features: FeatureInfo) -> None:
        super().__init__(config, features)
        self.level_ids = parse_levels(config.levels, len(features.channels))
        dim = sum(features.channels[i] for i in self.level_ids)
        self.register_buffer("memory_bank", torch.zeros(0, dim))
        self.register_buffer("task_sizes", torch.zeros(0, dtype=torch.long))  # rows per task
        self.draw_seed()
        self._mode = "finetune"

    @property
    def bank_sizes(self) -> list[int]:
        """Rows of the bank per task that contributed (one entry unless the own strategy)."""
        return [int(n) for n in self.task_sizes]

    def start_task(self, task_index: int, new_classes: Sequence[int], strategy: str) -> None:
        super().start_task(task_index, new_classes, strategy)
        self._mode = strategy

    def embed(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Locally aware patch features (B, D, h, w): each chosen level averaged over its p x p
        neighbourhood (zero padding counted, as the paper's unfold), the coarser ones upsampled
        bilinearly to the finest chosen level's grid, concatenated over channels."""
        k = self.config.neighbourhood
        pooled = [F.avg_pool2d(features[i], k, stride=1, padding=k // 2) for i in self.level_ids]
        size = pooled[0].shape[-2:]
        return torch.cat(
            [pooled[0]] + [F.interpolate(p, size=size, mode="bilinear", align_corners=False)
                           for p in pooled[1:]],
            dim=1,
        )

    @staticmethod
    def _rows(embedding: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) -> (B*h*w, D), patches of one image contiguous."""
        return embedding.permute(0, 2, 3, 1).reshape(-1, embedding.shape[1])

    @torch.no_grad()
    def finish_task(self, features: list[torch.Tensor], class_ids: torch.Tensor) -> None:
        """Coreset of every patch the learner holds; appended under the own strategy,
        replacing the bank otherwise."""
        rows = torch.cat([self._rows(self.embed(f))
                          for f, _ in self.iter_batches(features, None)])
        keep = coreset_size(rows.shape[0], self.config.coreset_ratio)
        idx = greedy_coreset_indices(rows, keep, self.fit_seed,
                                     self.config.projection_dim)
        coreset = rows[idx]
        size = self.task_sizes.new_tensor([keep])
        if self._mode == OWN_STRATEGY:
            self.memory_bank = torch.cat([self.memory_bank, coreset])
            self.task_sizes = torch.cat([self.task_sizes, size])
        else:
            self.memory_bank = coreset
            self.task_sizes = size

    @torch.no_grad()
    def route(self, features: list[torch.Tensor]) -> torch.Tensor | None:
        """HasRouting, own strategy: the task whose bank holds most of an image's nearest rows
        (a vote over its patches; None outside the own strategy: one bank, nothing to route)."""
        if self._mode != OWN_STRATEGY or not len(self.task_sizes):
            return None
        embedding = self.embed(features)
        b = embedding.shape[0]
        _, nn_index = nearest_neighbours(self._rows(embedding), self.memory_bank,
                                         self.config.chunk_size)
        bounds = self.task_sizes.cumsum(0)
        task_of_row = torch.bucketize(nn_index.view(b, -1), bounds, right=True)
        votes = F.one_hot(task_of_row, len(bounds)).sum(dim=1)
        first = torch.tensor([classes[0] for classes in self.task_classes[: len(bounds)]])
        return first.to(votes.device)[votes.argmax(dim=1)]

    @torch.no_grad()
    def score(self, features: list[torch.Tensor], class_ids: torch.Tensor | None) -> AnomalyOutput:
        if self.memory_bank.shape[0] == 0:
            raise RuntimeError("patchcore's memory bank is empty: finish_task was never called")
        embedding = self.embed(features)
        b, d, h, w = embedding.shape
        patches = self._rows(embedding)
        dist, nn_index = nearest_neighbours(patches, self.memory_bank, self.config.chunk_size)
        patch_scores = dist.view(b, h * w)
        maps = patchcore_anomaly_map(patch_scores.view(b, h, w), self.upsample,
                                     self.config.blur_sigma)
        if self.config.reweight_neighbors > 0:
            image_scores = reweighted_scores(patch_scores, nn_index.view(b, h * w),
                                             patches.view(b, h * w, d), self.memory_bank,
                                             self.config.reweight_neighbors)
        else:
            image_scores = patch_scores.amax(dim=1)
        return AnomalyOutput(maps=maps, image_scores=image_scores)
