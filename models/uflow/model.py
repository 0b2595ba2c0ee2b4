"""U-Flow as a plain nn.Module: a U-shaped multi-scale flow, coarse to fine.

The coarsest level goes through a stage of flow steps; its output is split in two along
channels: one part is a latent of that scale, the other is upsampled invertibly (pixel shuffle:
4 channels -> a 2x2 patch) and concatenated with the next finer level's features, which then go
through that level's stage, and so on. The whole thing is one bijection (split, concat and
pixel shuffle are volume preserving), giving a latent per scale and one log-det.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import FrEIA.framework as Ff
import FrEIA.modules as Fm
import torch
from torch import nn
from torch.nn import functional as F

from nfbench.models.backbone import FeatureInfo
from nfbench.models.base import AnomalyOutput, FlowADModel, LossTerms, ModelConfig, TrainProgress
from nfbench.models.flows import conv_subnet
from nfbench.models.nfa import neg_log10_nfa_map
from nfbench.models.registry import register_model
from nfbench.models.uflow.anomaly_map import likelihood_map
from nfbench.models.uflow.loss import uflow_loss


@dataclass
class UFlowConfig(ModelConfig):
    epochs: int = field(default=6, metadata={"help": "epochs per task (paper: 200)"})
    batch_size: int = field(default=8, metadata={"help": "images per step (paper: 8)"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate (paper code: 1e-3)"})
    flow_steps: int = field(default=4, metadata={"help": "AllInOne blocks per stage (scale)"})
    affine_clamp: float = field(default=2.0, metadata={"help": "affine clamping of the scale"})
    subnet_channels_ratio: float = field(
        default=1.0, metadata={"help": "subnet width / input channels"})
    permute_soft: bool = field(default=False, metadata={"help": "soft (orthogonal) permutations"})
    nfa_window: int = field(default=5, metadata={"help": "NFA window at the finest scale"})
    nfa_probability_thr: float = field(
        default=0.9, metadata={"help": "NFA: entry is a candidate when z^2 >= chi2_1.ppf(this)"})
    score_mode: str = field(
        default="likelihood", metadata={"help": "maps and image scores: likelihood | nfa "
                                        "(-log10 NFA; the 'nfa' threshold rule is 0)"})


def build_stage(channels: int, size: int, config: UFlowConfig) -> Ff.SequenceINN:
    """One scale's flow steps: AllInOne blocks with alternating 3x3 / 1x1 conv subnets."""
    stage = Ff.SequenceINN(channels, size, size)
    for step in range(config.flow_steps):
        stage.append(
            Fm.AllInOneBlock,
            subnet_constructor=conv_subnet(3 if step % 2 == 0 else 1, config.subnet_channels_ratio),
            affine_clamping=config.affine_clamp,
            permute_soft=config.permute_soft,
        )
    return stage


def up_channels(channels: int) -> int:
    """Channels passed up to the finer scale: about half, a multiple of 4 for pixel shuffle."""
    return channels // 8 * 4


class UShapedFlow(nn.Module):
    """The invertible part. Levels are given finest first (the harness's order)."""

    def __init__(self, channels: tuple[int, ...], sizes: tuple[int, ...], config: UFlowConfig):
        super().__init__()
        for fine, coarse in zip(sizes[:-1], sizes[1:], strict=True):
            if fine != 2 * coarse:
                raise ValueError(f"U-Flow needs each level twice the size of the next, got {sizes}")
        self.in_channels = list(channels)
        stage_channels = [0] * len(channels)
        carried = 0  # channels coming up from the coarser scale
        for level in reversed(range(len(channels))):
            stage_channels[level] = channels[level] + carried
            carried = up_channels(stage_channels[level]) // 4
        self.stage_channels = stage_channels
        self.stages = nn.ModuleList(
            build_stage(c, s, config) for c, s in zip(stage_channels, sizes, strict=True))

    def forward(self, feats: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Features -> latents (finest first) and log|det J| per sample."""
        latents: list[torch.Tensor] = []
        log_det = feats[0].new_zeros(feats[0].shape[0])
        x = feats[-1]
        for level in reversed(range(len(feats))):
            z, ld = self.stages[level](x)
            log_det = log_det + ld
            if level == 0:
                latents.insert(0, z)
                break
            k = up_channels(z.shape[1])
            latents.insert(0, z[:, k:])
            x = feats[level - 1]
            if k > 0:
                x = torch.cat([x, F.pixel_shuffle(z[:, :k], 2)], dim=1)
        return latents, log_det

    def inverse(self, latents: list[torch.Tensor]) -> list[torch.Tensor]:
        """Latents (finest first) -> features: the exact inverse of forward."""
        feats: list[torch.Tensor] = [latents[0]] * len(latents)
        up = None
        for level in range(len(latents)):
            z = latents[level]
            if up is not None and up.shape[1] > 0:  # nothing went up when a stage had < 8 ch
                z = torch.cat([F.pixel_unshuffle(up, 2), z], dim=1)
            x, _ = self.stages[level](z, rev=True)
            if level == len(latents) - 1:
                feats[level] = x
            else:
                c = self.in_channels[level]
                feats[level], up = x[:, :c], x[:, c:]
        return feats


@register_model("uflow")
class UFlow(FlowADModel):
    config_class = UFlowConfig
    paper = "Tailanian et al., U-Flow, JMIV 2024"
    gaussian_latents = True

    def __init__(self, config: UFlowConfig, features: FeatureInfo) -> None:
        super().__init__(config, features)
        if config.score_mode not in ("likelihood", "nfa"):
            raise ValueError(f"unknown U-Flow score mode {config.score_mode!r} (likelihood|nfa)")
        # trainable LayerNorm per level, as the reference's feature extractor for CNN backbones
        self.norms = nn.ModuleList(
            nn.LayerNorm([c, s, s]) for c, s in zip(features.channels, features.sizes, strict=True))
        self.flow = UShapedFlow(features.channels, features.sizes, config)

    def encode(self, features: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Latents per scale (finest first) and log|det J| per sample."""
        return self.flow([norm(f) for norm, f in zip(self.norms, features, strict=True)])

    def training_loss(
        self, features: list[torch.Tensor], class_ids: torch.Tensor, progress: TrainProgress
    ) -> LossTerms:
        latents, log_det = self.encode(features)
        loss = uflow_loss(latents, log_det)
        return LossTerms(loss, {"nll": float(loss.detach())})

    @torch.no_grad()
    def nfa_map(self, features: list[torch.Tensor]) -> torch.Tensor:
        """(B, H, W) -log10 NFA at input size; > 0 (NFA < 1) is the paper's anomaly decision."""
        latents, _ = self.encode(features)
        return neg_log10_nfa_map(latents, self.features.input_size, self.config.nfa_window,
                                 self.config.nfa_probability_thr)

    @torch.no_grad()
    def latents(
        self, features: list[torch.Tensor], class_ids: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Per-scale latent maps (B, C, h, w), finest first: N(0, I) under the normal model."""
        return self.encode(features)[0]

    @torch.no_grad()
    def score(self, features: list[torch.Tensor], class_ids: torch.Tensor | None) -> AnomalyOutput:
        if self.config.score_mode == "nfa":
            maps = self.nfa_map(features)
        else:
            latents, _ = self.encode(features)
            maps = likelihood_map(latents, self.upsample)
        return AnomalyOutput(maps=maps, image_scores=maps.flatten(1).amax(dim=1))

    def diagnostic_groups(self) -> dict[str, list[torch.Tensor]]:
        return {f"stage_level{i}": list(s.parameters()) for i, s in enumerate(self.flow.stages)}
