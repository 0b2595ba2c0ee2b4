"""`anomalib.fastflow`: anomalib's FastflowModel, its loss and anomaly map, on nfbench features.

anomalib's torch model is built offline (timm resnet18, pre_trained=False); its timm feature
extractor is then swapped for a FeatureFeeder and its LayerNorms and flow blocks are rebuilt,
with anomalib's own `create_fast_flow_block`, for the nfbench levels. forward() runs verbatim.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from nfbench.models.backbone import FeatureInfo
from nfbench.models.base import ModelConfig
from nfbench.models.reference.common import AnomalibNetEntry, FeatureFeeder, anomalib_module
from nfbench.models.registry import register_model


@dataclass
class AnomalibFastflowConfig(ModelConfig):
    """anomalib 2.7 Fastflow defaults (Adam lr 1e-3, weight decay 1e-5)."""

    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate (anomalib: 1e-3)"})
    weight_decay: float = field(default=1e-5, metadata={"help": "Adam weight decay"})
    flow_steps: int = field(default=8, metadata={"help": "AllInOne blocks per level"})
    conv3x3_only: bool = field(default=False, metadata={"help": "no alternating 1x1 subnets"})
    hidden_ratio: float = field(default=1.0, metadata={"help": "subnet width / input channels"})
    clamp: float = field(default=2.0, metadata={"help": "affine clamping of the coupling scale"})


@register_model("anomalib.fastflow")
class AnomalibFastflow(AnomalibNetEntry):
    """Reference FastFlow: anomalib's network, loss and map; nfbench's frozen features."""

    config_class = AnomalibFastflowConfig
    kind = "reference"
    paper = "anomalib's FastFlow on nfbench features"

    def __init__(self, config: AnomalibFastflowConfig, features: FeatureInfo) -> None:
        super().__init__(config, features)
        torch_model = anomalib_module("fastflow")
        size = (features.input_size, features.input_size)
        net = torch_model.FastflowModel(
            input_size=size, backbone="resnet18", pre_trained=False,
            flow_steps=config.flow_steps, conv3x3_only=config.conv3x3_only,
            hidden_ratio=config.hidden_ratio,
        )
        net.feature_extractor = FeatureFeeder()
        dims = [[c, s, s] for c, s in zip(features.channels, features.sizes, strict=True)]
        net.norms = nn.ModuleList(nn.LayerNorm(d, elementwise_affine=True) for d in dims)
        net.fast_flow_blocks = nn.ModuleList(
            torch_model.create_fast_flow_block(
                input_dimensions=d, conv3x3_only=config.conv3x3_only,
                hidden_ratio=config.hidden_ratio, flow_steps=config.flow_steps,
                clamp=config.clamp,
            )
            for d in dims
        )
        self.net = net
        self.criterion = anomalib_module("fastflow", "loss").FastflowLoss()

    def diagnostic_groups(self) -> dict[str, list[torch.Tensor]]:
        blocks = self.net.fast_flow_blocks
        return {f"flow_level{i}": list(b.parameters()) for i, b in enumerate(blocks)}
