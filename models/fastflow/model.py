"""FastFlow as a plain nn.Module: per-level 2D flows (FrEIA AllInOneBlock) over feature maps.

Subnets alternate 3x3 and 1x1 convolutions (unless conv3x3_only). Each level's features pass
through a trainable LayerNorm first, as in the paper's code for CNN backbones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import FrEIA.framework as Ff
import FrEIA.modules as Fm
import torch
from torch import nn

from nfbench.models.backbone import FeatureInfo
from nfbench.models.base import AnomalyOutput, FlowADModel, LossTerms, ModelConfig, TrainProgress
from nfbench.models.fastflow.anomaly_map import fastflow_anomaly_map
from nfbench.models.fastflow.loss import fastflow_loss
from nfbench.models.flows import conv_subnet
from nfbench.models.registry import register_model


@dataclass
class FastFlowConfig(ModelConfig):
    flow_steps: int = field(default=8, metadata={"help": "AllInOne blocks per level"})
    conv3x3_only: bool = field(default=False, metadata={"help": "no alternating 1x1 subnets"})
    hidden_ratio: float = field(default=1.0, metadata={"help": "subnet width / input channels"})
    clamp: float = field(default=2.0, metadata={"help": "affine clamping of the coupling scale"})


def build_fastflow_level(
    channels: int, height: int, width: int, config: FastFlowConfig
) -> Ff.SequenceINN:
    """One level's flow: flow_steps AllInOne blocks with alternating conv subnets."""
    flow = Ff.SequenceINN(channels, height, width)
    for step in range(config.flow_steps):
        kernel = 3 if (step % 2 == 0 or config.conv3x3_only) else 1
        flow.append(
            Fm.AllInOneBlock,
            subnet_constructor=conv_subnet(kernel, config.hidden_ratio),
            affine_clamping=config.clamp,
            permute_soft=False,
        )
    return flow


@register_model("fastflow")
class FastFlow(FlowADModel):
    config_class = FastFlowConfig
    paper = "Yu et al., FastFlow, arXiv:2111.07677, 2021"
    gaussian_latents = True

    def __init__(self, config: FastFlowConfig, features: FeatureInfo) -> None:
        super().__init__(config, features)
        self.norms = nn.ModuleList()
        self.flows = nn.ModuleList()
        for channels, size in zip(features.channels, features.sizes, strict=True):
            self.norms.append(nn.LayerNorm([channels, size, size], elementwise_affine=True))
            self.flows.append(build_fastflow_level(channels, size, size, config))

    def encode(self, features: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Latents and log|det J| per level."""
        latents, log_dets = [], []
        for feat, norm, flow in zip(features, self.norms, self.flows, strict=True):
            z, log_det = flow(norm(feat))
            latents.append(z)
            log_dets.append(log_det)
        return latents, log_dets

    @torch.no_grad()
    def latents(
        self, features: list[torch.Tensor], class_ids: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Per-level latent maps (B, C, h, w): N(0, I) under the normal model."""
        return self.encode(features)[0]

    def training_loss(
        self, features: list[torch.Tensor], class_ids: torch.Tensor, progress: TrainProgress
    ) -> LossTerms:
        latents, log_dets = self.encode(features)
        loss = fastflow_loss(latents, log_dets)
        return LossTerms(loss, {"nll": float(loss.detach())})

    def score(self, features: list[torch.Tensor], class_ids: torch.Tensor | None) -> AnomalyOutput:
        latents, _ = self.encode(features)
        maps = fastflow_anomaly_map(latents, self.features.input_size)
        return AnomalyOutput(maps=maps, image_scores=maps.flatten(1).amax(dim=1))

    def diagnostic_groups(self) -> dict[str, list[torch.Tensor]]:
        return {f"flow_level{i}": list(f.parameters()) for i, f in enumerate(self.flows)}
