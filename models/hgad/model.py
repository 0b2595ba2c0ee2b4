"""HGAD (Yao et al., ECCV 2024) as a plain nn.Module: per-level conditional flows over feature
vectors (positional-encoding condition, FrEIA AllInOneBlock) + a hierarchical GMM per level.

Class ids arrive as global ids; the GMM rows are slots in order of first appearance. The GMM
grows in `start_task` under every strategy (the own strategy "hgad" is that growth, nothing
more). Scoring is task-agnostic (mixture over every seen class) unless class ids are given.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import FrEIA.framework as Ff
import FrEIA.modules as Fm
import torch
from torch import nn

from nfbench.models.backbone import FeatureInfo
from nfbench.models.base import AnomalyOutput, FlowADModel, LossTerms, ModelConfig, TrainProgress
from nfbench.models.flows import ActNorm, mlp_subnet, positional_encoding_2d
from nfbench.models.hgad.anomaly_map import hgad_anomaly_map, normality
from nfbench.models.hgad.gmm import HierarchicalGMM
from nfbench.models.hgad.loss import LossWeights, combine, hgad_level_losses
from nfbench.models.registry import register_model


@dataclass
class HGADConfig(ModelConfig):
    """Defaults are reduced for CPU benches; the paper's values are given in each help."""

    epochs: int = field(default=6, metadata={"help": "epochs per task (paper: 25x8)"})
    batch_size: int = field(default=8, metadata={"help": "images per step (paper: 8)"})
    lr: float = field(default=1e-3, metadata={"help": "flow and phi learning rate (paper: 2e-4)"})
    weight_decay: float = field(default=1e-4, metadata={"help": "flow weight decay (paper)"})
    lr_centres: float = field(default=3e-3, metadata={"help": "mus/mu_deltas lr (paper: 3 x lr)"})
    adam_beta1: float = field(default=0.95, metadata={"help": "Adam beta1 (paper: 0.95)"})
    adam_beta2: float = field(default=0.99, metadata={"help": "Adam beta2 (paper: 0.99)"})
    coupling_blocks: int = field(default=4, metadata={"help": "AllInOne blocks/level (paper 12)"})
    clamp: float = field(default=1.9, metadata={"help": "affine clamping (paper: 1.9)"})
    hidden_ratio: float = field(default=1.0, metadata={"help": "subnet width / input (paper 2)"})
    pos_embed_dim: int = field(default=32, metadata={"help": "positional condition (paper 256)"})
    n_intra: int = field(default=10, metadata={"help": "intra-class centres per class (paper)"})
    init_scale: float = field(default=5.0, metadata={"help": "distance between new centres"})
    lambda_g: float = field(default=1.0, metadata={"help": "weight of L_g (paper lambda1)"})
    lambda_mi: float = field(default=100.0, metadata={"help": "weight of L_mi (paper lambda2)"})
    lambda_e: float = field(default=1.0, metadata={"help": "weight of L_e"})
    lambda_g_intra: float = field(default=1.0, metadata={"help": "weight of L_g_intra"})
    lambda_z: float = field(default=1.0, metadata={"help": "weight of L_z"})
    label_smoothing: float = field(default=0.02, metadata={"help": "L_mi targets (paper 0.02)"})
    warmup_epochs: int = field(default=1, metadata={"help": "epochs/task before g_intra, z"})
    train_positions: int = field(default=256, metadata={"help": "positions/image/level (0=all)"})
    blur_sigma: float = field(default=4.0, metadata={"help": "map blur in input px (paper 4)"})
    use_entropy: bool = field(default=True, metadata={"help": "multiply by the entropy map"})
    input_norm: bool = field(default=True, metadata={"help": "ActNorm before the flow (not paper)"})


def build_hgad_flow(dim: int, config: HGADConfig) -> Ff.SequenceINN:
    """One level's conditional flow over (N, dim) vectors, condition (N, pos_embed_dim)."""
    flow = Ff.SequenceINN(dim)
    for _ in range(config.coupling_blocks):
        flow.append(Fm.AllInOneBlock, cond=0, cond_shape=(config.pos_embed_dim,),
                    subnet_constructor=mlp_subnet(config.hidden_ratio),
                    affine_clamping=config.clamp, global_affine_type="SOFTPLUS",
                    permute_soft=True)
    return flow


def flatten_positions(feat: torch.Tensor) -> torch.Tensor:
    """(B, D, h, w) -> (B*h*w, D), positions in (b, y, x) order."""
    return feat.permute(0, 2, 3, 1).reshape(-1, feat.shape[1])


@register_model("hgad")
class HGAD(FlowADModel):
    config_class = HGADConfig
    paper = "Yao et al., HGAD, ECCV 2024"
    class_conditional = True
    own_strategy = "hgad"
    own_strategy_is_finetune = True  # centres grow under every strategy
    # seed 001's freeze ablation: the flow against the hierarchical GMM
    ablation_groups = {"NF": ("flow",), "GMM": ("mus", "mu_deltas", "phi_intras", "phi_inters")}

    def __init__(self, config: HGADConfig, features: FeatureInfo) -> None:
        super().__init__(config, features)
        self.config: HGADConfig = config
        self.weights = LossWeights(config.lambda_g, config.lambda_mi, config.lambda_e,
                                   config.lambda_g_intra, config.lambda_z)
        self.flows = nn.ModuleList(build_hgad_flow(c, config) for c in features.channels)
        self.norms = nn.ModuleList(
            ActNorm(c) if config.input_norm else nn.Identity() for c in features.channels)
        self.gmms = nn.ModuleList(
            HierarchicalGMM(c, config.n_intra, config.init_scale) for c in features.channels)
        for i, size in enumerate(features.sizes):
            pos = positional_encoding_2d(config.pos_embed_dim, size, size)
            self.register_buffer(f"pos{i}", flatten_positions(pos.unsqueeze(0)), persistent=False)
        # map references from the last task's training data (finish_task); until then the
        # bounds: log-likelihood 0, -H 0, summed normality = number of levels
        levels = len(features.channels)
        self.register_buffer("log_prob_ref", torch.zeros(levels))
        self.register_buffer("neg_entropy_ref", torch.zeros(levels))
        self.register_buffer("normal_max", torch.full((2,), float(levels)))

    # ---- continual hooks ----------------------------------------------------------------
    def start_task(self, task_index: int, new_classes: Sequence[int], strategy: str) -> None:
        """Grow every level's GMM by the classes not seen before (all strategies)."""
        fresh = [c for c in dict.fromkeys(new_classes) if c not in self.seen_classes]
        super().start_task(task_index, fresh, strategy)
        for gmm in self.gmms:
            gmm.grow(len(fresh))

    def slots(self, class_ids: torch.Tensor) -> torch.Tensor:
        """Global class ids -> GMM rows; -1 for a class never seen. On the model's device,
        wherever the ids come from, since they index the GMM's tensors."""
        device = self.log_prob_ref.device
        given = (int(c) for c in class_ids.reshape(-1).unique())
        top = max([*self.seen_classes, *given], default=0)
        lut = torch.full((top + 1,), -1, dtype=torch.long, device=device)
        if self.seen_classes:
            lut[torch.tensor(self.seen_classes, device=device)] = torch.arange(
                len(self.seen_classes), device=device)
        return lut[class_ids.long().clamp(min=0).to(device)]

    def param_groups(self) -> list[dict]:
        """Flow (config lr, weight decay), centres (lr_centres), class weights (lr); no weight
        decay on the GMM, Adam betas from the config, as in the official optimiser."""
        cfg = self.config
        betas = (cfg.adam_beta1, cfg.adam_beta2)
        flow = [p for m in (self.norms, self.flows) for p in m.parameters() if p.requires_grad]
        centres = [p for g in self.gmms for p in (g.mus, g.mu_deltas) if p.requires_grad]
        phis = [p for g in self.gmms for p in (g.phi_intras, g.phi_inters) if p.requires_grad]
        groups = [{"params": flow, "betas": betas},
                  {"params": centres, "lr": cfg.lr_centres, "weight_decay": 0.0, "betas": betas},
                  {"params": phis, "weight_decay": 0.0, "betas": betas}]
        return [g for g in groups if g["params"]]

    def diagnostic_groups(self) -> dict[str, list[torch.Tensor]]:
        """flow_block{i}: coupling block i of every level together; then the GMM by name."""
        groups: dict[str, list[torch.Tensor]] = {}
        for flow in self.flows:
            for i, block in enumerate(flow.module_list):
                groups.setdefault(f"flow_block{i}", []).extend(
                    p for p in block.parameters() if p.requires_grad)
        if self.config.input_norm:
            groups["flow_input_norm"] = list(self.norms.parameters())
        for name in ("mus", "mu_deltas", "phi_intras", "phi_inters"):
            groups[name] = [getattr(g, name) for g in self.gmms]
        return groups

    # ---- flows ----------------------------------------------------------------------------
    def encode_level(
        self, level: int, feat: torch.Tensor, index: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Latents (N, D) and log|det J| (N,) of a level's vectors (optionally a subset)."""
        x = flatten_positions(feat)
        cond = getattr(self, f"pos{level}").repeat(feat.shape[0], 1)
        if index is not None:
            x, cond = x[index], cond[index]
        log_det = x.new_zeros(x.shape[0])
        if self.config.input_norm:
            x, log_det = self.norms[level](x)
        z, flow_log_det = self.flows[level](x, c=[cond])
        return z, log_det + flow_log_det.reshape(-1)

    def latents(
        self, features: list[torch.Tensor], class_ids: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Per-level latent maps (B, D, h, w) (for t-SNE; GMM-distributed, not N(0, I)); the
        flow is not class-conditional, so class_ids is unused."""
        maps = []
        for i, f in enumerate(features):
            b, _, h, w = f.shape
            z = self.encode_level(i, f)[0]
            maps.append(z.reshape(b, h, w, -1).permute(0, 3, 1, 2))
        return maps

    # ---- training -------------------------------------------------------------------------
    def training_loss(
        self, features: list[torch.Tensor], class_ids: torch.Tensor, progress: TrainProgress
    ) -> LossTerms:
        slots = self.slots(class_ids)
        if bool((slots < 0).any()):
            pairs = zip(class_ids.tolist(), slots.tolist(), strict=True)
            unseen = sorted({c for c, s in pairs if s < 0})
            warnings.warn(f"hgad: classes {unseen} trained before start_task; growing now",
                          stacklevel=2)
            self.start_task(progress.task_index, unseen, "finetune")
            slots = self.slots(class_ids)
        intra = progress.epoch >= self.config.warmup_epochs
        total = features[0].new_zeros(())
        parts: dict[str, float] = {}
        for level, feat in enumerate(features):
            b, _, h, w = feat.shape
            level_slots = slots.repeat_interleave(h * w)
            index = None
            if 0 < self.config.train_positions < h * w:
                keep = b * self.config.train_positions
                index = torch.randperm(b * h * w, device=feat.device)[:keep]
                level_slots = level_slots[index]
            z, log_det = self.encode_level(level, feat, index)
            terms = hgad_level_losses(z, log_det, self.gmms[level], level_slots,
                                      self.config.label_smoothing, intra)
            total = total + combine(terms, self.weights)
            for k, v in terms.items():
                parts[k] = parts.get(k, 0.0) + float(v.detach())
        return LossTerms(total, parts)

    @torch.no_grad()
    def finish_task(self, features: list[torch.Tensor], class_ids: torch.Tensor) -> None:
        """Map references from the training data with the final parameters, where the official
        code takes maxima over the test set of one class: per level the highest task-agnostic
        per-dim log-likelihood and -H over the training positions, then per factor the highest
        summed normality over the training pixels."""
        levels = range(len(self.flows))
        lps: list[list[torch.Tensor]] = [[] for _ in levels]
        neg_hs: list[list[torch.Tensor]] = [[] for _ in levels]
        for feats, _ in self.iter_batches(features, None):
            for i, f in enumerate(feats):
                lp, h = self.level_log_prob_and_entropy(i, f, None)
                lps[i].append(lp)
                neg_hs[i].append(-h)
        lp_maps = [torch.cat(m) for m in lps]
        neg_h_maps = [torch.cat(m) for m in neg_hs]
        self.log_prob_ref.copy_(torch.stack([m.max() for m in lp_maps]))
        self.neg_entropy_ref.copy_(torch.stack([m.max() for m in neg_h_maps]))
        best = torch.full_like(self.normal_max, -torch.inf)
        for lo in range(0, lp_maps[0].shape[0], 32):  # upsampled maps, a chunk at a time
            chunk = slice(lo, lo + 32)
            like = normality([m[chunk] for m in lp_maps], self.log_prob_ref, self.upsample)
            cert = normality([m[chunk] for m in neg_h_maps], self.neg_entropy_ref, self.upsample)
            best = torch.maximum(best, torch.stack([like.max(), cert.max()]))
        self.normal_max.copy_(best)

    # ---- scoring --------------------------------------------------------------------------
    def level_log_prob_and_entropy(
        self, level: int, feat: torch.Tensor, class_ids: torch.Tensor | None,
        with_prior: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-dim log p(x) and H(p(y|z)), each (B, h, w). With class ids, log p(x | y) for
        known classes; unknown ids fall back to the mixture over all seen classes."""
        b, _, h, w = feat.shape
        z, log_det = self.encode_level(level, feat)
        gmm = self.gmms[level]
        log_p = gmm.log_prob(z)
        if class_ids is not None and gmm.n_classes > 0:
            slots = self.slots(class_ids).repeat_interleave(h * w)
            known = slots >= 0
            if bool(known.any()):
                per_class = gmm.log_prob_per_class(z[known])
                log_p[known] = per_class.gather(1, slots[known].view(-1, 1)).squeeze(1)
        log_p = (log_p + log_det) / z.shape[1]
        entropy = gmm.class_entropy(z, with_prior) if gmm.n_classes else torch.zeros_like(log_p)
        return log_p.reshape(b, h, w), entropy.reshape(b, h, w)

    def score(self, features: list[torch.Tensor], class_ids: torch.Tensor | None) -> AnomalyOutput:
        """Map = blur(max - sum exp(logp - ref)) x blur(max - sum exp(-H - ref)) with references
        from the training data (finish_task); image score = max of the map (the official rule)."""
        pairs = [self.level_log_prob_and_entropy(i, f, class_ids) for i, f in enumerate(features)]
        use_h = self.config.use_entropy and len(self.seen_classes) > 1
        maps = hgad_anomaly_map(
            [lp for lp, _ in pairs], [h for _, h in pairs] if use_h else None,
            self.log_prob_ref, self.neg_entropy_ref, self.normal_max, self.upsample,
            self.config.blur_sigma)
        return AnomalyOutput(maps=maps, image_scores=maps.flatten(1).amax(dim=1))

    @torch.no_grad()
    def route(self, features: list[torch.Tensor]) -> torch.Tensor | None:
        """HasRouting: argmax_y of the GMM's per-class log-density per dimension, averaged over
        positions and levels (one class per image; None before any class)."""
        if not self.seen_classes:
            return None
        total = 0.0
        for level, feat in enumerate(features):
            z, _ = self.encode_level(level, feat)
            per_class = self.gmms[level].log_prob_per_class(z) / z.shape[1]
            total = total + per_class.view(feat.shape[0], -1, per_class.shape[1]).mean(dim=1)
        rows = total.argmax(dim=1)
        return torch.tensor(self.seen_classes, device=rows.device)[rows]

    def posterior_entropy(
        self, features: list[torch.Tensor], with_prior: bool = False
    ) -> torch.Tensor:
        """Per-image mean of H(p(y|z)) over positions and levels, (B,), in nats. HGAD's own
        posterior has no class prior; with_prior=True uses softmax(phi_inters) too."""
        per_level = [self.level_log_prob_and_entropy(i, f, None, with_prior)[1].flatten(1).mean(1)
                     for i, f in enumerate(features)]
        return torch.stack(per_level, dim=1).mean(1)
