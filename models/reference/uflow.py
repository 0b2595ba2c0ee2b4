"""`anomalib.uflow`: anomalib's UflowModel (U-shaped flow), loss and anomaly map; nfbench features.

anomalib's UflowModel constructor always loads pretrained timm weights (a download), so the
instance is made without it and given what the constructor would set: anomalib's own
`build_flow` and AnomalyMapGenerator, and in place of its LayerNormFeatureExtractor an
adapter with the same contract (channels, scale_factors, scales, trainable LayerNorms) that
normalises the given nfbench features. forward() and encode() run verbatim.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from nfbench.models.backbone import FeatureInfo
from nfbench.models.base import ModelConfig
from nfbench.models.reference.common import AnomalibNetEntry, anomalib_module, new_uninitialised
from nfbench.models.registry import register_model


@dataclass
class AnomalibUflowConfig(ModelConfig):
    """anomalib 2.7 Uflow defaults (Adam lr 1e-3, weight decay 1e-5)."""

    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate (anomalib: 1e-3)"})
    weight_decay: float = field(default=1e-5, metadata={"help": "Adam weight decay"})
    flow_steps: int = field(default=4, metadata={"help": "coupling blocks per flow stage"})
    affine_clamp: float = field(default=2.0, metadata={"help": "affine clamping"})
    affine_subnet_channels_ratio: float = field(default=1.0, metadata={"help": "subnet width"})
    permute_soft: bool = field(default=False, metadata={"help": "soft channel permutation"})


class LayerNormFeatures(nn.Module):
    """anomalib's LayerNormFeatureExtractor contract over precomputed features."""

    def __init__(self, features: FeatureInfo) -> None:
        super().__init__()
        self.channels = list(features.channels)
        self.scale_factors = list(features.strides)
        self.scales = range(len(self.scale_factors))
        self.feature_normalizations = nn.ModuleList(
            nn.LayerNorm([c, s, s], elementwise_affine=True)
            for c, s in zip(features.channels, features.sizes, strict=True)
        )

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        return [norm(f) for norm, f in zip(self.feature_normalizations, features, strict=True)]


@register_model("anomalib.uflow")
class AnomalibUflow(AnomalibNetEntry):
    """Reference U-Flow: anomalib's U-shaped flow, loss and map; nfbench's frozen features."""

    config_class = AnomalibUflowConfig
    kind = "reference"
    paper = "anomalib's U-Flow on nfbench features"
    known_deviation = (
        "anomalib 2.7's UFlowLoss sums the latent term over the batch (B times the authors' "
        "train.py); measured on the synthetic set (joint, 2 epochs, seeds 0-2), the authors' "
        "loss raises this entry's image ACC from 47.8 to 66.8 (models/reference/README.md)")

    def __init__(self, config: AnomalibUflowConfig, features: FeatureInfo) -> None:
        super().__init__(config, features)
        torch_model = anomalib_module("uflow")
        net = new_uninitialised(torch_model.UflowModel)  # its __init__ downloads weights
        net.input_size = (features.input_size, features.input_size)
        net.affine_clamp = config.affine_clamp
        net.affine_subnet_channels_ratio = config.affine_subnet_channels_ratio
        net.permute_soft = config.permute_soft
        net.feature_extractor = LayerNormFeatures(features)
        net.flow = net.build_flow(config.flow_steps)
        net.anomaly_map_generator = anomalib_module("uflow", "anomaly_map").AnomalyMapGenerator(
            net.input_size
        )
        self.net = net
        self.criterion = anomalib_module("uflow", "loss").UFlowLoss()
