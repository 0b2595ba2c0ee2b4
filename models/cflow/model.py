"""CFLOW-AD as a plain nn.Module: one conditional flow per level over feature vectors.

Every spatial position of a level's feature map is one sample x in R^C; the flow models
p(x | position) with the 2D sin/cos positional encoding as the condition (FrEIA AllInOneBlock
with a condition input, Linear-ReLU-Linear subnets, affine clamping 1.9).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import FrEIA.framework as Ff
import FrEIA.modules as Fm
import torch
from torch import nn

from nfbench.models.backbone import FeatureInfo
from nfbench.models.base import AnomalyOutput, FlowADModel, LossTerms, ModelConfig, TrainProgress
from nfbench.models.cflow.anomaly_map import cflow_anomaly_map
from nfbench.models.cflow.loss import cflow_log_prob, cflow_loss
from nfbench.models.flows import mlp_subnet, positional_encoding_2d
from nfbench.models.registry import register_model


@dataclass
class CflowConfig(ModelConfig):
    epochs: int = field(default=8, metadata={"help": "epochs per task (paper: 25x8 sub-epochs)"})
    lr: float = field(default=5e-3, metadata={"help": "Adam learning rate (paper: 2e-4)"})
    coupling_blocks: int = field(
        default=4, metadata={"help": "AllInOne blocks per level (paper: 8)"})
    condition_vector: int = field(
        default=128, metadata={"help": "positional-encoding channels (multiple of 4)"})
    clamp_alpha: float = field(default=1.9, metadata={"help": "affine clamping of the scale"})
    fiber_batch_size: int = field(
        default=1024, metadata={"help": "random positions per level per step (paper code: 256)"})
    subnet_hidden_ratio: float = field(
        default=2.0, metadata={"help": "subnet width / subnet input (paper: 2x)"})
    permute_soft: bool = field(
        default=True, metadata={"help": "random orthogonal (not hard) permutations, as the paper"})
    global_affine_type: str = field(
        default="SOFTPLUS",
        metadata={"help": "AllInOne global scale activation (SOFTPLUS|SIGMOID|EXP)"})
    map_normalization: str = field(
        default="train",
        metadata={"help": "train: exp(logp - max over the training positions); none"})

    def __post_init__(self) -> None:
        if self.map_normalization not in ("train", "none"):
            raise ValueError(
                f"unknown CFLOW map normalization {self.map_normalization!r} (train|none)")


def build_cflow_decoder(channels: int, config: CflowConfig) -> Ff.SequenceINN:
    """One level's conditional flow over C-dim vectors, condition = positional encoding."""
    flow = Ff.SequenceINN(channels)
    for _ in range(config.coupling_blocks):
        flow.append(
            Fm.AllInOneBlock,
            cond=0,
            cond_shape=(config.condition_vector,),
            subnet_constructor=mlp_subnet(config.subnet_hidden_ratio),
            affine_clamping=config.clamp_alpha,
            global_affine_type=config.global_affine_type,
            permute_soft=config.permute_soft,
        )
    return flow


def _vectors(feat: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, H, W) features and (P, H, W) encoding -> (B*H*W, C) vectors, (B*H*W, P) conditions."""
    b, c, h, w = feat.shape
    vectors = feat.permute(0, 2, 3, 1).reshape(b * h * w, c)
    cond = pos.permute(1, 2, 0).reshape(1, h * w, -1).expand(b, -1, -1).reshape(b * h * w, -1)
    return vectors, cond.to(feat.dtype)


@register_model("cflow")
class Cflow(FlowADModel):
    config_class = CflowConfig
    paper = "Gudovskiy et al., CFLOW-AD, WACV 2022"
    gaussian_latents = True

    def __init__(self, config: CflowConfig, features: FeatureInfo) -> None:
        super().__init__(config, features)
        self.decoders = nn.ModuleList(build_cflow_decoder(c, config) for c in features.channels)
        for i, size in enumerate(features.sizes):
            pos = positional_encoding_2d(config.condition_vector, size, size)
            self.register_buffer(f"pos_{i}", pos, persistent=False)
        # per level, max of log p / C over the last task's training positions (finish_task)
        self.register_buffer("log_prob_ref", torch.zeros(len(features.channels)))

    def _pos(self, level: int, height: int, width: int) -> torch.Tensor:
        pos = getattr(self, f"pos_{level}")
        if pos.shape[-2:] != (height, width):  # another input size than the one built for
            pos = positional_encoding_2d(self.config.condition_vector, height, width).to(pos)
        return pos

    def level_log_prob(self, level: int, vectors: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """log p(x | position) / C for (N, C) vectors."""
        z, log_jac_det = self.decoders[level](vectors, c=[cond])
        return cflow_log_prob(z, log_jac_det)

    def training_loss(
        self, features: list[torch.Tensor], class_ids: torch.Tensor, progress: TrainProgress
    ) -> LossTerms:
        log_probs, parts = [], {}
        for level, feat in enumerate(features):
            vectors, cond = _vectors(feat, self._pos(level, *feat.shape[-2:]))
            # a random subset of positions per step, as the paper's fiber batches
            n = min(self.config.fiber_batch_size, vectors.shape[0])
            idx = torch.randperm(vectors.shape[0], device=vectors.device)[:n]
            log_p = self.level_log_prob(level, vectors[idx], cond[idx])
            log_probs.append(log_p)
            parts[f"logp_level{level}"] = float(log_p.detach().mean())
        loss = cflow_loss(log_probs)
        parts["loss"] = float(loss.detach())
        return LossTerms(loss, parts)

    @torch.no_grad()
    def latents(
        self, features: list[torch.Tensor], class_ids: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Per-level latent maps (B, C, h, w): every position's z, N(0, I) under the normal
        model (the flow is conditioned on the position, not on the class)."""
        maps = []
        for level, feat in enumerate(features):
            b, c, h, w = feat.shape
            vectors, cond = _vectors(feat, self._pos(level, h, w))
            z, _ = self.decoders[level](vectors, c=[cond])
            maps.append(z.reshape(b, h, w, c).permute(0, 3, 1, 2))
        return maps

    def log_prob_maps(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per-level (B, h, w) maps of log p / C."""
        maps = []
        for level, feat in enumerate(features):
            b, _, h, w = feat.shape
            vectors, cond = _vectors(feat, self._pos(level, h, w))
            maps.append(self.level_log_prob(level, vectors, cond).reshape(b, h, w))
        return maps

    @torch.no_grad()
    def finish_task(self, features: list[torch.Tensor], class_ids: torch.Tensor) -> None:
        """Map reference: per level, the highest log p / C over every training position, with
        the final parameters (the paper's code takes the max over the test set instead)."""
        best = torch.full_like(self.log_prob_ref, -torch.inf)
        for feats, _ in self.iter_batches(features, None):
            for level, log_p in enumerate(self.log_prob_maps(feats)):
                best[level] = torch.maximum(best[level], log_p.max())
        self.log_prob_ref.copy_(best)

    @torch.no_grad()
    def score(self, features: list[torch.Tensor], class_ids: torch.Tensor | None) -> AnomalyOutput:
        refs = self.log_prob_ref if self.config.map_normalization == "train" else None
        maps = cflow_anomaly_map(self.log_prob_maps(features), self.upsample, refs)
        return AnomalyOutput(maps=maps, image_scores=maps.flatten(1).amax(dim=1))

    def diagnostic_groups(self) -> dict[str, list[torch.Tensor]]:
        return {f"flow_level{i}": list(d.parameters()) for i, d in enumerate(self.decoders)}
