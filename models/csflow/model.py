"""CS-Flow as a plain nn.Module: one cross-scale flow over the features of 3 scales.

The paper feeds the features of the image at 3 resolutions (full, 1/2, 1/4) from one layer of
EfficientNet-B5. The harness gives one image's multi-level features instead, so by default
(scales="pyramid") the chosen level (the deepest) is average-pooled by 2 and 4: the same
features at 3 resolutions, the closest stand-in for features of the resized image.
scales="levels" uses the harness's levels as the scales instead (different channels per scale,
which the coupling supports).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.nn import functional as F

from nfbench.models.backbone import FeatureInfo
from nfbench.models.base import AnomalyOutput, FlowADModel, LossTerms, ModelConfig, TrainProgress
from nfbench.models.csflow.anomaly_map import csflow_anomaly_map, csflow_image_score
from nfbench.models.csflow.coupling import CrossScaleFlow
from nfbench.models.csflow.loss import csflow_loss
from nfbench.models.registry import register_model


@dataclass
class CsFlowConfig(ModelConfig):
    epochs: int = field(default=6, metadata={"help": "epochs per task (paper: 240)"})
    lr: float = field(default=2e-3, metadata={"help": "Adam learning rate (paper: 2e-4)"})
    n_coupling_blocks: int = field(default=4, metadata={"help": "cross-scale coupling blocks"})
    clamp: float = field(default=3.0, metadata={"help": "soft clamp alpha of the log scale"})
    hidden_channels: int = field(
        default=64, metadata={"help": "cross-convolution hidden channels (paper: 1024)"})
    kernel_size: int = field(
        default=3, metadata={"help": "subnet kernel of all but the last block"})
    last_kernel_size: int = field(default=5, metadata={"help": "subnet kernel of the last block"})
    leaky_slope: float = field(default=0.1, metadata={"help": "leaky ReLU slope in the subnets"})
    scales: str = field(
        default="pyramid", metadata={"help": "pyramid: one level pooled to n-scales sizes; levels"})
    n_scales: int = field(default=3, metadata={"help": "scales of the pyramid (paper: 3)"})
    pyramid_level: int = field(
        default=-1, metadata={"help": "feature level the pyramid is built from (-1 = deepest)"})
    map_mode: str = field(
        default="product", metadata={"help": "per-scale |z|^2 maps fused by product|finest|mean"})


@register_model("csflow")
class CsFlow(FlowADModel):
    config_class = CsFlowConfig
    paper = "Rudolph et al., CS-Flow, WACV 2022"
    gaussian_latents = True

    def __init__(self, config: CsFlowConfig, features: FeatureInfo) -> None:
        super().__init__(config, features)
        if config.scales == "pyramid":
            channels = [features.channels[config.pyramid_level]] * config.n_scales
            size = features.sizes[config.pyramid_level]
            if size // 2 ** (config.n_scales - 1) < 1:
                raise ValueError(f"CS-Flow: level of size {size} is too small for "
                                 f"{config.n_scales} scales")
        elif config.scales == "levels":
            channels = list(features.channels)
        else:
            raise ValueError(f"unknown CS-Flow scales {config.scales!r} (pyramid|levels)")
        kernels = [config.kernel_size] * (config.n_coupling_blocks - 1) + [config.last_kernel_size]
        self.flow = CrossScaleFlow(
            channels, config.n_coupling_blocks, config.hidden_channels, config.clamp, kernels,
            config.leaky_slope)

    def scale_inputs(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """The flow's inputs, finest scale first."""
        if self.config.scales == "levels":
            return list(features)
        feat = features[self.config.pyramid_level]
        h, w = feat.shape[-2:]
        return [feat] + [
            F.adaptive_avg_pool2d(feat, (h // 2**s, w // 2**s))
            for s in range(1, self.config.n_scales)]

    def encode(self, features: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Latents per scale and log|det J| per sample."""
        return self.flow(self.scale_inputs(features))

    @torch.no_grad()
    def latents(
        self, features: list[torch.Tensor], class_ids: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Per-scale latent maps (B, C, h, w), finest first: N(0, I) under the normal model."""
        return self.encode(features)[0]

    def training_loss(
        self, features: list[torch.Tensor], class_ids: torch.Tensor, progress: TrainProgress
    ) -> LossTerms:
        latents, log_det = self.encode(features)
        loss = csflow_loss(latents, log_det)
        return LossTerms(loss, {"nll_per_dim": float(loss.detach())})

    def score(self, features: list[torch.Tensor], class_ids: torch.Tensor | None) -> AnomalyOutput:
        latents, _ = self.encode(features)
        maps = csflow_anomaly_map(latents, self.upsample, self.config.map_mode)
        return AnomalyOutput(maps=maps, image_scores=csflow_image_score(latents))

    def diagnostic_groups(self) -> dict[str, list[torch.Tensor]]:
        groups: dict[str, list[torch.Tensor]] = {}
        for i, layer in enumerate(self.flow.layers):
            params = list(layer.parameters())
            if params:
                groups[f"block{i // 2}"] = params
        return groups

