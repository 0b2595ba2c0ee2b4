"""CCNF (seed 001 §3.3-3.5): one class-conditional flow per backbone level, no GMM.

log p(x|y) = log N(f(x; e_y, p); 0, I) + log|det df/dx| for every feature vector x, with e_y a
row of a growing class-embedding table. Continual mechanism ("ccnf"): task 1 trains the flow and
the embeddings; later tasks freeze every flow parameter and train only the new rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from nfbench.models.backbone import FeatureInfo
from nfbench.models.base import AnomalyOutput, FlowADModel, LossTerms, ModelConfig, TrainProgress
from nfbench.models.ccnf import loss as L
from nfbench.models.ccnf.anomaly_map import (
    fuse_levels,
    image_class_decision,
    level_score_map,
    posterior_entropy,
    select_class,
)
from nfbench.models.ccnf.coupling import CCNFLevel
from nfbench.models.ccnf.embedding import ClassEmbedding
from nfbench.models.flows import gaussian_log_prob, positional_encoding_2d
from nfbench.models.registry import register_model

# images per flow pass when every class's likelihood is needed: small batches (latency) put
# every class in one pass; a batch of this size or more keeps one pass per class, which
# measured faster on the CPU (copies of large batches cost more than the saved launches)
CLASS_BATCH_ROWS = 32


@dataclass
class CCNFConfig(ModelConfig):
    grad_clip: float = field(default=1.0, metadata={"help": "max grad norm (seed: 1.0; 0 = off)"})
    epochs: int = field(default=8, metadata={"help": "epochs per task"})
    lr: float = field(default=5e-3, metadata={"help": "Adam learning rate of the flow"})
    embed_dim: int = field(default=32, metadata={"help": "class embedding size E_c"})
    pos_dim: int = field(
        default=32, metadata={"help": "2D positional encoding size (multiple of 4)"})
    coupling_blocks: int = field(default=4, metadata={"help": "coupling blocks per level"})
    hidden_ratio: float = field(default=1.0, metadata={"help": "subnet width / channels"})
    actnorm: bool = field(default=True, metadata={"help": "data-initialised ActNorm first"})
    zero_init: bool = field(
        default=False, metadata={"help": "identity start: zero, tanh-bounded subnet output gain"})
    spectral_norm: bool = field(default=True, metadata={"help": "spectral norm on every Linear"})
    scale_clamp: bool = field(default=True, metadata={"help": "s = alpha * tanh(s)"})
    alpha: float = field(default=0.7, metadata={"help": "scale clamp alpha (seed: 0.5-0.8)"})
    warmup: bool = field(default=True, metadata={"help": "additive-to-affine warm-up"})
    warmup_steps: int = field(
        default=10, metadata={"help": "warm-up length in optimiser steps (seed: 2000)"})
    w_logdet: float = field(default=2e-4, metadata={"help": "weight of L_logdet (0 = off)"})
    w_balance: float = field(default=1e-2, metadata={"help": "weight of L_balance (0 = off)"})
    w_zreg: float = field(default=0.05, metadata={"help": "weight of L_zreg (0 = off)"})
    w_scale: float = field(default=1e-3, metadata={"help": "weight of L_scale (0 = off)"})
    w_mi: float = field(default=0.1, metadata={"help": "weight of L_mi (0 = off)"})
    w_entropy: float = field(default=0.01, metadata={"help": "weight of L_e (0 = off)"})
    lambda_entropy: float = field(default=1.0, metadata={"help": "lambda_H of the score"})
    score_per_dim: bool = field(
        default=False, metadata={"help": "score -log p(x|y)/D + lambda_H*H (seed: -log p)"})
    class_decision: str = field(
        default="image", metadata={"help": "y_hat per 'image' or per 'position'"})
    train_positions: int = field(
        default=128,
        metadata={"help": "positions sampled per image per level in training (0 = all)"})
    embedding_lr: float = field(default=0.1, metadata={"help": "learning rate of e_y rows"})
    new_row_init: str = field(
        default="mean", metadata={"help": "new rows: 'mean' of old rows or 'random'"})
    embedding_init_std: float = field(default=1.0, metadata={"help": "std of random rows"})

    def __post_init__(self) -> None:
        if not 0 < self.alpha:
            raise ValueError(f"ccnf alpha must be > 0, got {self.alpha}")
        if self.class_decision not in ("image", "position"):
            raise ValueError(f"ccnf class_decision must be image|position: {self.class_decision}")
        if self.new_row_init not in ("mean", "random"):
            raise ValueError(f"ccnf new_row_init must be mean|random: {self.new_row_init}")


@register_model("ccnf")
class CCNF(FlowADModel):
    config_class = CCNFConfig
    paper = "nfbench, seed 001 (class-conditional flow)"
    class_conditional = True
    own_strategy = "ccnf"
    gaussian_latents = True  # under the chosen class y_hat

    def __init__(self, config: CCNFConfig, features: FeatureInfo) -> None:
        super().__init__(config, features)
        self.config: CCNFConfig = config
        self.embedding = ClassEmbedding(config.embed_dim, config.embedding_init_std)
        self.levels = nn.ModuleList()
        for i, (channels, size) in enumerate(zip(features.channels, features.sizes, strict=True)):
            hidden = max(16, int(config.hidden_ratio * channels))
            self.levels.append(CCNFLevel(
                channels, config.embed_dim, config.pos_dim, config.coupling_blocks, hidden,
                config.spectral_norm, config.scale_clamp, config.alpha, config.actnorm,
                config.zero_init, seed=i))
            pos = positional_encoding_2d(config.pos_dim, size, size).flatten(1).T.unsqueeze(0)
            self.register_buffer(f"pos{i}", pos)
        # warm-up factor in [0, 1]; part of the flow (frozen with it under "ccnf")
        self.register_buffer("warm", torch.tensor(0.0 if config.warmup else 1.0))
        self.flow_frozen = False

    # ---- continual hooks ----------------------------------------------------------------
    def start_task(self, task_index: int, new_classes: Sequence[int], strategy: str) -> None:
        """Grow the table by exactly the new classes; under "ccnf" freeze the flow after task 1."""
        flow_trained_before = bool(self.seen_classes)
        new = [c for c in dict.fromkeys(new_classes) if c not in self.seen_classes]
        super().start_task(task_index, new_classes, strategy)
        self.embedding.grow(len(new), self.config.new_row_init)
        if strategy == self.own_strategy and flow_trained_before:
            self.flow_frozen = True
            self.levels.requires_grad_(False)
            self.embedding.train_only_last_chunk()
        else:
            self.flow_frozen = False
            self.levels.requires_grad_(True)
            self.embedding.requires_grad_(True)
        self.train(self.training)

    def train(self, mode: bool = True) -> CCNF:
        """A frozen flow stays in eval mode: no spectral-norm power iteration, no ActNorm init."""
        super().train(mode)
        if self.flow_frozen:
            self.levels.eval()
        return self

    def param_groups(self) -> list[dict]:
        flow = [p for p in self.levels.parameters() if p.requires_grad]
        rows = [p for p in self.embedding.parameters() if p.requires_grad]
        groups = [{"params": flow}] if flow else []
        if rows:
            groups.append({"params": rows, "lr": self.config.embedding_lr})
        return groups

    def diagnostic_groups(self) -> dict[str, list[torch.Tensor]]:
        groups: dict[str, list[torch.Tensor]] = {}
        for level in self.levels:
            for k, coupling in enumerate(level.couplings):
                groups.setdefault(f"flow_block{k}", []).extend(coupling.parameters())
            if level.actnorm is not None:
                groups.setdefault("flow_actnorm", []).extend(level.actnorm.parameters())
        groups["embeddings"] = list(self.embedding.parameters())
        return groups

    # ---- helpers ------------------------------------------------------------------------
    def _vectors(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """(B, C, H, W) -> (B, H*W, C) per level."""
        return [f.flatten(2).transpose(1, 2) for f in features]

    def _pos(self, i: int) -> torch.Tensor:
        return getattr(self, f"pos{i}")

    def class_embeddings(self, class_ids: torch.Tensor) -> torch.Tensor:
        """(B, 1, E) embeddings for global class ids; an unknown id gets the mean row."""
        rows = self._rows(class_ids)
        fallback = self.embedding.mean_row()
        if not len(self.embedding):
            return fallback.expand(len(rows), 1, -1)
        table = self.embedding.table()
        emb = torch.where((rows >= 0)[:, None], table[rows.clamp(min=0)], fallback)
        return emb[:, None]

    def _rows(self, class_ids: torch.Tensor) -> torch.Tensor:
        """Table rows of global class ids (-1 for an unknown id), on the table's device."""
        rows = [self.seen_classes.index(c) if c in self.seen_classes else -1
                for c in class_ids.tolist()]
        return torch.tensor(rows, dtype=torch.long, device=self.embedding.anchor.device)

    def _all_class_log_probs(self, vectors: list[torch.Tensor]) -> list[torch.Tensor]:
        """log p(x|y=k) (K, B, N) per level for every known row (the mean row if none).

        The classes go through each level together, as one batch of K*B images (in chunks of
        at most CLASS_BATCH_ROWS), instead of one flow pass per class: on a GPU the per-class
        loop was launch-bound (50 ms p50 at batch 1 on an H100)."""
        table = self.embedding.table() if len(self.embedding) else self.embedding.mean_row()[None]
        warm = float(self.warm)
        batch = vectors[0].shape[0]
        per_chunk = max(1, CLASS_BATCH_ROWS // batch)
        out = []
        for i, (x, level) in enumerate(zip(vectors, self.levels, strict=True)):
            parts = []
            for rows in table.split(per_chunk):
                k = rows.shape[0]
                if k == 1:  # one class: its row broadcasts over the batch, no copies
                    xs, emb = x, rows.view(1, 1, -1)
                else:  # (k*B, N, C) and (k*B, 1, E), class-major
                    xs = x.repeat(k, *([1] * (x.dim() - 1)))
                    emb = rows.repeat_interleave(batch, dim=0).unsqueeze(1)
                parts.append(level.log_prob(xs, emb, self._pos(i), warm).view(k, batch, -1))
            out.append(torch.cat(parts))
        return out

    # ---- training -----------------------------------------------------------------------
    def training_loss(
        self, features: list[torch.Tensor], class_ids: torch.Tensor, progress: TrainProgress
    ) -> LossTerms:
        cfg = self.config
        if not self.flow_frozen:
            ramp = min(1.0, progress.global_step / max(1, cfg.warmup_steps))
            self.warm.fill_(ramp if cfg.warmup else 1.0)
        warm = float(self.warm)
        emb = self.class_embeddings(class_ids)
        neg_emb = None
        n_rows = len(self.embedding)
        if n_rows >= 2 and (cfg.w_mi or cfg.w_entropy):
            rows = self._rows(class_ids)
            shift = torch.randint(1, n_rows, rows.shape).to(rows.device)  # any other row
            neg_emb = self.embedding.table()[(rows + shift) % n_rows][:, None]
        weights = {"logdet": cfg.w_logdet, "balance": cfg.w_balance, "zreg": cfg.w_zreg,
                   "scale": cfg.w_scale, "mi": cfg.w_mi, "entropy": cfg.w_entropy}
        terms: dict[str, torch.Tensor] = {}

        def add(name: str, value: torch.Tensor) -> None:
            terms[name] = terms.get(name, 0.0) + value

        for i, (x, level) in enumerate(zip(self._vectors(features), self.levels, strict=True)):
            dim, pos = x.shape[-1], self._pos(i)
            if 0 < cfg.train_positions < x.shape[1]:  # each position is a sample: subsample them
                keep = torch.randperm(x.shape[1])[: cfg.train_positions].to(x.device)
                x, pos = x[:, keep], pos[:, keep]
            z, log_det, scales = level(x, emb, pos, warm)
            log_pz = gaussian_log_prob(z, dim=-1)
            add("g", L.nll_loss(log_pz, log_det, dim))
            add("logdet", L.logdet_loss(log_det, dim))
            add("balance", L.balance_loss(log_pz, log_det, dim))
            add("zreg", L.zreg_loss(z))
            add("scale", L.scale_loss(scales))
            if neg_emb is not None:
                log_p_true = log_pz + log_det
                log_p_neg = level.log_prob(x, neg_emb, pos, warm)
                add("mi", L.mi_loss(log_p_true, log_p_neg, dim))
                add("entropy", L.entropy_loss(log_p_true, log_p_neg))
        total = terms["g"] + sum(weights[k] * v for k, v in terms.items() if k != "g")
        parts = {k: float(v.detach()) for k, v in terms.items()}
        parts["warm"] = warm
        return LossTerms(total, parts)

    # ---- scoring and diagnostics ----------------------------------------------------------
    def _decide(self, log_probs: list[torch.Tensor], dims: list[int]) -> list[torch.Tensor]:
        if self.config.class_decision == "image":
            return [image_class_decision(log_probs, dims)] * len(log_probs)
        return [lp.argmax(dim=0) for lp in log_probs]

    @torch.no_grad()
    def score(self, features: list[torch.Tensor], class_ids: torch.Tensor | None) -> AnomalyOutput:
        """Task-agnostic: y_hat from the seen classes; task-aware: the given class."""
        vectors = self._vectors(features)
        dims = [x.shape[-1] for x in vectors]
        log_probs = self._all_class_log_probs(vectors)
        if class_ids is None:
            chosen = [select_class(lp, c) for lp, c in zip(log_probs, self._decide(log_probs, dims),
                                                           strict=True)]
        else:
            emb, warm = self.class_embeddings(class_ids), float(self.warm)
            chosen = [level.log_prob(x, emb, self._pos(i), warm)
                      for i, (x, level) in enumerate(zip(vectors, self.levels, strict=True))]
        maps = []
        for lp, ch, d, f in zip(log_probs, chosen, dims, features, strict=True):
            level_map = level_score_map(ch, d, self.config.lambda_entropy, lp,
                                        self.config.score_per_dim)
            maps.append(level_map.view(f.shape[0], *f.shape[2:]))
        fused = fuse_levels(maps, self.features.input_size)
        return AnomalyOutput(maps=fused, image_scores=fused.flatten(1).amax(dim=1))

    @torch.no_grad()
    def latents(
        self, features: list[torch.Tensor], class_ids: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """z per level (B, C, H, W), for t-SNE; without class ids the image's y_hat is used."""
        vectors = self._vectors(features)
        if class_ids is None:
            log_probs = self._all_class_log_probs(vectors)
            rows = image_class_decision(log_probs, [x.shape[-1] for x in vectors])
            table = self.embedding.table() if len(self.embedding) else None
            emb = (table[rows][:, None] if table is not None
                   else self.embedding.mean_row().expand(rows.shape[0], 1, -1))
        else:
            emb = self.class_embeddings(class_ids)
        out = []
        for i, (x, level, f) in enumerate(zip(vectors, self.levels, features, strict=True)):
            z, _, _ = level(x, emb, self._pos(i), float(self.warm))
            out.append(z.transpose(1, 2).reshape(f.shape))
        return out

    @torch.no_grad()
    def route(self, features: list[torch.Tensor]) -> torch.Tensor | None:
        """HasRouting: the class y_hat of the image-level decision (None before any class)."""
        if not len(self.embedding):
            return None
        vectors = self._vectors(features)
        rows = image_class_decision(self._all_class_log_probs(vectors),
                                    [x.shape[-1] for x in vectors])
        return torch.tensor(self.seen_classes, device=rows.device)[rows]

    @torch.no_grad()
    def posterior_entropy(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Per-image mean of H(p(y|x)) over positions and levels (B,), for the diagnostics."""
        log_probs = self._all_class_log_probs(self._vectors(features))
        return torch.stack([posterior_entropy(lp).mean(dim=1) for lp in log_probs]).mean(dim=0)
