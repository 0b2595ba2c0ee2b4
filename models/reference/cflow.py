"""`anomalib.cflow`: anomalib's CflowModel decoders, loss and anomaly map on nfbench features.

The torch model is built offline (timm resnet18, pre_trained=False); its encoder is swapped
for a FeatureFeeder and its decoders are rebuilt with anomalib's `cflow_head` for the nfbench
levels. Scoring runs anomalib's forward() verbatim. anomalib's training step lives in its
Lightning module; it is re-expressed here with anomalib's own `positional_encoding_2d` and
`get_logp` and the same loss, -logsigmoid(log p / C), one optimiser step per image batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from nfbench.models.backbone import FeatureInfo
from nfbench.models.base import AnomalyOutput, FlowADModel, LossTerms, ModelConfig, TrainProgress
from nfbench.models.reference.common import FeatureFeeder, anomalib_module, as_output, net_mode
from nfbench.models.registry import register_model


@dataclass
class AnomalibCflowConfig(ModelConfig):
    """anomalib 2.7 Cflow defaults (Adam lr 1e-4, no weight decay)."""

    lr: float = field(default=1e-4, metadata={"help": "Adam learning rate (anomalib: 1e-4)"})
    weight_decay: float = field(default=0.0, metadata={"help": "Adam weight decay"})
    coupling_blocks: int = field(default=8, metadata={"help": "AllInOne blocks per level"})
    clamp_alpha: float = field(default=1.9, metadata={"help": "affine clamping"})
    condition_vector: int = field(default=128, metadata={"help": "positional condition size"})
    permute_soft: bool = field(default=False, metadata={"help": "soft channel permutation"})
    fiber_batch_size: int = field(default=64, metadata={"help": "fibers per decoder call"})
    fibers_per_step: int = field(
        default=0, metadata={"help": "random fibers per level per step (0 = all of the batch)"}
    )


@register_model("anomalib.cflow")
class AnomalibCflow(FlowADModel):
    """Reference CFLOW-AD: anomalib's decoders, loss and map; nfbench's frozen features."""

    config_class = AnomalibCflowConfig
    kind = "reference"
    paper = "anomalib's CFLOW-AD on nfbench features"
    # anomalib's AnomalyMapGenerator subtracts the max log-likelihood of the scored batch and
    # flips the map by the batch max: kept verbatim (it is the reference), so flagged here
    batch_dependent_scores = True

    def __init__(self, config: AnomalibCflowConfig, features: FeatureInfo) -> None:
        super().__init__(config, features)
        torch_model = anomalib_module("cflow")
        self._utils = anomalib_module("cflow", "utils")
        layers = [f"level{i}" for i in range(len(features.channels))]
        net = torch_model.CflowModel(
            backbone="resnet18", layers=["layer1"], pre_trained=False,
            fiber_batch_size=config.fiber_batch_size, condition_vector=config.condition_vector,
            coupling_blocks=config.coupling_blocks, clamp_alpha=config.clamp_alpha,
            permute_soft=config.permute_soft,
        )
        net.encoder = FeatureFeeder(keys=layers)
        net.pool_layers = layers
        net.pool_dims = list(features.channels)
        net.decoders = nn.ModuleList(
            self._utils.cflow_head(
                condition_vector=config.condition_vector, coupling_blocks=config.coupling_blocks,
                clamp_alpha=config.clamp_alpha, n_features=c, permute_soft=config.permute_soft,
            )
            for c in features.channels
        )
        net.anomaly_map_generator = anomalib_module("cflow", "anomaly_map").AnomalyMapGenerator(
            pool_layers=layers
        )
        self.net = net

    def _pos(self, batch: int, height: int, width: int, device: torch.device) -> torch.Tensor:
        enc = self._utils.positional_encoding_2d(self.config.condition_vector, height, width)
        # "(b h w) c" rows, as anomalib's einops.rearrange of the repeated encoding
        return enc.permute(1, 2, 0).reshape(height * width, -1).repeat(batch, 1).to(device)

    def training_loss(
        self, features: list[torch.Tensor], class_ids: torch.Tensor, progress: TrainProgress
    ) -> LossTerms:
        total = features[0].new_zeros(())
        parts: dict[str, float] = {}
        for i, (feat, decoder) in enumerate(zip(features, self.net.decoders, strict=True)):
            b, c, h, w = feat.shape
            c_r = self._pos(b, h, w, feat.device)
            e_r = feat.detach().permute(0, 2, 3, 1).reshape(-1, c)  # "(b h w) c"
            take = self.config.fibers_per_step
            if 0 < take < e_r.shape[0]:
                idx = torch.randperm(e_r.shape[0], device=feat.device)[:take]
                c_r, e_r = c_r[idx], e_r[idx]
            p_u, log_jac_det = decoder(e_r, [c_r])
            log_prob = self._utils.get_logp(c, p_u, log_jac_det) / c  # likelihood per dim
            loss = -F.logsigmoid(log_prob).mean()
            parts[f"level{i}"] = float(loss.detach())
            total = total + loss  # decoders are independent: a sum equals per-level steps
        return LossTerms(total, parts)

    @torch.no_grad()
    def score(self, features: list[torch.Tensor], class_ids: torch.Tensor | None) -> AnomalyOutput:
        size = self.features.input_size
        # anomalib's forward reads only the device and spatial size of its "images" argument
        placeholder = features[0].new_empty(features[0].shape[0], 0, size, size)
        with net_mode(self.net, False), self.net.encoder.feed(list(features)):
            out = self.net(placeholder)
        return as_output(out)

    def diagnostic_groups(self) -> dict[str, list[torch.Tensor]]:
        return {f"flow_level{i}": list(d.parameters()) for i, d in enumerate(self.net.decoders)}
