"""MSFlow as a plain nn.Module: asymmetric parallel flows per scale, then a fusion flow.

Each harness level is pooled (3x3, stride 2, as the official code), passed through its own
flow of AllInOne blocks conditioned on a positional encoding (more blocks on coarser scales),
and the resulting maps of all scales through one fusion coupling that exchanges information
across scales. Localisation and detection aggregate the scales differently (anomaly_map.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.nn import functional as F

from nfbench.models.backbone import FeatureInfo
from nfbench.models.base import AnomalyOutput, FlowADModel, LossTerms, ModelConfig, TrainProgress
from nfbench.models.msflow.anomaly_map import IMAGE_SCORES, msflow_scores
from nfbench.models.msflow.flows import MultiScaleFlow
from nfbench.models.msflow.loss import msflow_loss, n_dims
from nfbench.models.registry import register_model

POOL_TYPES = ("avg", "max", "none")


@dataclass
class MSFlowConfig(ModelConfig):
    epochs: int = field(default=8, metadata={
        "help": "epochs per task (paper: 100 = 25 meta x 4 sub-epochs; bench: 8, reduced for "
                "the CPU budget to cost what a FastFlow cell costs)"})
    batch_size: int = field(default=8, metadata={
        "help": "images per optimisation step (official code: --batch-size 8)"})
    lr: float = field(default=3e-3, metadata={
        "help": "Adam learning rate (paper: 1e-4 with warm-up and step decay; bench: 3e-3, "
                "chosen on training loss at the bench epochs)"})
    weight_decay: float = field(default=0.0, metadata={
        "help": "Adam weight decay (official code: none)"})
    grad_clip: float = field(default=2.0, metadata={
        "help": "max grad norm (official code: 2)"})
    pool_type: str = field(default="avg", metadata={
        "help": "pooling of every level before the flows, 3x3 stride 2: avg|max|none "
                "(official code: avg)"})
    parallel_blocks: str = field(default="2,5,8", metadata={
        "help": "AllInOne blocks per parallel flow, finest scale first, comma-separated; one "
                "number for every scale (paper: 2,5,8)"})
    cond_channels: int = field(default=64, metadata={
        "help": "positional-encoding channels conditioning the parallel flows, multiple of 4; "
                "0 = none (official code: 64)"})
    clamp: float = field(default=1.9, metadata={
        "help": "affine clamp of the parallel and fusion couplings (official code: 1.9)"})
    fusion_blocks: int = field(default=1, metadata={
        "help": "fusion couplings (each after a channel permutation) (official code: 1)"})
    fusion_hidden_ratio: float = field(default=0.25, metadata={
        "help": "fusion subnet hidden width / its input channels (official code: 1/4)"})
    map_mode: str = field(default="add", metadata={
        "help": "localisation map: add (paper's localisation aggregation) | mul (its detection "
                "aggregation)"})
    top_k: float = field(default=0.03, metadata={
        "help": "image score = mean of the top fraction of the detection map (official: 0.03)"})
    image_score: str = field(default="normalised", metadata={
        "choices": IMAGE_SCORES,
        "help": "image score: normalised (paper: top-k of 1 - exp(S - max S), saturates at 1.0 "
                "on classes the flow no longer models) | nll (top-k of -S, no per-image "
                "exponent)"})

    def __post_init__(self) -> None:
        if self.image_score not in IMAGE_SCORES:
            raise ValueError(f"unknown MSFlow image score {self.image_score!r} "
                             f"({'|'.join(IMAGE_SCORES)})")


def parse_blocks(text: str, n_scales: int) -> list[int]:
    """'2,5,8' -> [2, 5, 8]; one number applies to every scale."""
    try:
        blocks = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise ValueError(f"MSFlow: parallel_blocks must be integers, got {text!r}") from None
    if len(blocks) == 1:
        blocks = blocks * n_scales
    if len(blocks) != n_scales or min(blocks) < 1:
        raise ValueError(f"MSFlow: parallel_blocks {text!r} does not give >= 1 block for each "
                         f"of {n_scales} scales")
    return blocks


@register_model("msflow")
class MSFlow(FlowADModel):
    config_class = MSFlowConfig
    paper = "Zhou et al., MSFlow, TNNLS 2024"
    gaussian_latents = True

    def __init__(self, config: MSFlowConfig, features: FeatureInfo) -> None:
        super().__init__(config, features)
        if config.pool_type not in POOL_TYPES:
            raise ValueError(f"unknown MSFlow pool type {config.pool_type!r} "
                             f"({'|'.join(POOL_TYPES)})")
        channels = list(features.channels)
        self.flow = MultiScaleFlow(
            channels, parse_blocks(config.parallel_blocks, len(channels)), config.cond_channels,
            config.clamp, config.fusion_blocks, config.fusion_hidden_ratio)

    def pool(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """The flows' inputs: every level pooled 3x3 / stride 2 / padding 1 (official code)."""
        if self.config.pool_type == "avg":
            return [F.avg_pool2d(f, 3, 2, 1) for f in features]
        if self.config.pool_type == "max":
            return [F.max_pool2d(f, 3, 2, 1) for f in features]
        return list(features)

    def encode(self, features: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Latents per scale (finest first) and log|det J| per sample."""
        return self.flow(self.pool(features))

    @torch.no_grad()
    def latents(
        self, features: list[torch.Tensor], class_ids: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Per-scale latent maps (B, C, h, w) after the fusion flow, finest first: N(0, I)
        under the normal model."""
        return self.encode(features)[0]

    def training_loss(
        self, features: list[torch.Tensor], class_ids: torch.Tensor, progress: TrainProgress
    ) -> LossTerms:
        latents, log_det = self.encode(features)
        loss = msflow_loss(latents, log_det)
        nll = float(loss.detach())
        return LossTerms(loss, {"nll": nll, "nll_per_dim": nll / n_dims(latents)})

    def score(self, features: list[torch.Tensor], class_ids: torch.Tensor | None) -> AnomalyOutput:
        latents, _ = self.encode(features)
        maps, image_scores = msflow_scores(
            latents, self.features.input_size, self.config.map_mode, self.config.top_k,
            self.config.image_score)
        return AnomalyOutput(maps=maps, image_scores=image_scores)

    def diagnostic_groups(self) -> dict[str, list[torch.Tensor]]:
        groups = {f"parallel_scale{i}": list(f.parameters())
                  for i, f in enumerate(self.flow.parallel)}
        groups["fusion"] = list(self.flow.fusion.parameters())
        return groups
