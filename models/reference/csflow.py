"""`anomalib.csflow`: anomalib's CS-Flow coupling layers, loss, scores and map; nfbench features.

anomalib's CsFlowModel always builds an ImageNet EfficientNet-B5 (a download) and feeds its
flow the *same* layer of the image at three resolutions, with 304 channels hard-wired into
the flow graph. Here the feature extractor is REPLACED by an adapter around the nfbench
backbone: its deepest tap (stride 16) at full, 1/2 and 1/4 resolution by average pooling, and
the graph is wired exactly as anomalib's CrossScaleFlow (same nodes, anomalib's
ParallelPermute and ParallelGlowCouplingLayer) with the channel count of that tap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import FrEIA.framework as ff
import torch
from torch import nn
from torch.nn import functional as F

from nfbench.models.backbone import FeatureInfo
from nfbench.models.base import AnomalyOutput, ModelConfig
from nfbench.models.reference.common import AnomalibNetEntry, anomalib_module, new_uninitialised
from nfbench.models.registry import register_model


@dataclass
class AnomalibCsflowConfig(ModelConfig):
    """anomalib 2.7 Csflow defaults (Adam lr 2e-4, eps 1e-4, weight decay 1e-5, clip 1)."""

    lr: float = field(default=2e-4, metadata={"help": "Adam learning rate (anomalib: 2e-4)"})
    weight_decay: float = field(default=1e-5, metadata={"help": "Adam weight decay"})
    grad_clip: float = field(default=1.0, metadata={"help": "max grad norm (anomalib: 1)"})
    adam_eps: float = field(default=1e-4, metadata={"help": "Adam epsilon (anomalib: 1e-4)"})
    n_coupling_blocks: int = field(default=4, metadata={"help": "cross-scale coupling blocks"})
    clamp: float = field(default=3.0, metadata={"help": "soft clamp of the coupling scale"})
    cross_conv_hidden_channels: int = field(default=1024, metadata={"help": "subnet width"})
    feature_level: int = field(default=-1, metadata={"help": "backbone tap for the 3 scales"})
    log_map: bool = field(default=True, metadata={
        "help": "log1p of anomalib's map (same ranking; the raw product overflows float16)"})


class PooledScales(nn.Module):
    """CS-Flow input from cached features: one tap at full, 1/2 and 1/4 resolution."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        feat = features[self.level]
        return [feat, F.avg_pool2d(feat, 2), F.avg_pool2d(feat, 4)]


def build_cross_scale_flow(
    torch_model, channels: int, sizes: list[int], blocks: int, clamp: float, hidden: int
) -> nn.Module:
    """anomalib's CrossScaleFlow graph with `channels` in place of its hard-wired 304."""
    nodes: list = [ff.InputNode(channels, s, s, name=f"input{i}") for i, s in enumerate(sizes)]
    kernel_sizes = [3] * (blocks - 1) + [5]
    for block in range(blocks):
        if block == 0:
            to_permute = [nodes[-3].out0, nodes[-2].out0, nodes[-1].out0]
        else:
            to_permute = [nodes[-1].out0, nodes[-1].out1, nodes[-1].out2]
        nodes.append(ff.Node(to_permute, torch_model.ParallelPermute, {"seed": block},
                             name=f"permute_{block}"))
        nodes.append(ff.Node(
            [nodes[-1].out0, nodes[-1].out1, nodes[-1].out2], torch_model.ParallelGlowCouplingLayer,
            {"clamp": clamp, "subnet_args": {"channels_hidden": hidden,
                                              "kernel_size": kernel_sizes[block]}},
            name=f"fc1_{block}",
        ))
    last = nodes[-1]
    nodes.extend([ff.OutputNode([getattr(last, f"out{i}")], name=f"output_end{i}")
                  for i in range(3)])
    flow = new_uninitialised(torch_model.CrossScaleFlow)
    flow.input_dims = (channels, sizes[0], sizes[0])
    flow.n_coupling_blocks, flow.clamp = blocks, clamp
    flow.kernel_sizes, flow.cross_conv_hidden_channels = kernel_sizes, hidden
    flow.graph = ff.GraphINN(nodes)
    return flow


@register_model("anomalib.csflow")
class AnomalibCsflow(AnomalibNetEntry):
    """Reference CS-Flow: anomalib's flow, loss, scores and map; adapter-fed nfbench features."""

    config_class = AnomalibCsflowConfig
    kind = "reference"
    paper = "anomalib's CS-Flow on nfbench features"
    known_deviation = (
        "anomalib's CS-Flow sums the log-det over the batch (B times the authors' per-sample "
        "term); measured on the synthetic set (joint, 2 epochs, seeds 0-2), the authors' form "
        "moves image ACC by 0.3 points (60.7 -> 60.4): no effect at this budget")

    def __init__(self, config: AnomalibCsflowConfig, features: FeatureInfo) -> None:
        super().__init__(config, features)
        torch_model = anomalib_module("csflow")
        anomaly_map = anomalib_module("csflow", "anomaly_map")
        level = config.feature_level % len(features.channels)
        channels, size = features.channels[level], features.sizes[level]
        if size % 4:
            raise ValueError(f"CS-Flow needs a feature map divisible by 4, got {size}")
        net = new_uninitialised(torch_model.CsFlowModel)  # its __init__ downloads B5 weights
        net.input_dims = (3, features.input_size, features.input_size)
        net.clamp = config.clamp
        net.cross_conv_hidden_channels = config.cross_conv_hidden_channels
        net.feature_extractor = PooledScales(level)
        net.graph = build_cross_scale_flow(
            torch_model, channels, [size, size // 2, size // 4], config.n_coupling_blocks,
            config.clamp, config.cross_conv_hidden_channels,
        )
        net.anomaly_map_generator = anomaly_map.AnomalyMapGenerator(
            input_dims=net.input_dims, mode=anomaly_map.AnomalyMapMode.ALL
        )
        self.net = net
        self.criterion = anomalib_module("csflow", "loss").CsFlowLoss()

    def param_groups(self) -> list[dict]:
        """One group with anomalib's Adam epsilon (the trainer builds Adam from these groups)."""
        params = [p for p in self.parameters() if p.requires_grad]
        return [{"params": params, "eps": self.config.adam_eps}] if params else []

    @torch.no_grad()
    def score(self, features: list[torch.Tensor], class_ids: torch.Tensor | None) -> AnomalyOutput:
        result = super().score(features, class_ids)
        if self.config.log_map:  # monotone: every pixel metric is unchanged
            result.maps = torch.log1p(result.maps)
        return result
