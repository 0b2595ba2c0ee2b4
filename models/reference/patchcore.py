"""`anomalib.patchcore`: anomalib's PatchcoreModel on nfbench features.

The torch model is built offline (timm resnet18, pre_trained=False); its feature extractor is
swapped for a FeatureFeeder returning the chosen nfbench levels keyed as anomalib's layers.
Everything else is anomalib's, run verbatim: the 3x3 average pooling and bilinear concatenation
(`generate_embedding`), the embedding store filled by forward() in training mode, the
KCenterGreedy coreset (`subsample_embedding`), the chunked nearest-neighbour search, the
re-weighted image score (num_neighbors 9) and the anomaly map (nearest upsampling, blur sigma 4).
Fitting happens in finish_task; there is nothing to train.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from nfbench.models.backbone import FeatureInfo
from nfbench.models.base import AnomalyOutput, ModelConfig
from nfbench.models.patchcore.model import MemoryBankModel, parse_levels
from nfbench.models.reference.common import FeatureFeeder, anomalib_module, as_output, net_mode
from nfbench.models.registry import register_model


@dataclass
class AnomalibPatchcoreConfig(ModelConfig):
    """anomalib 2.7 Patchcore defaults (layer2 + layer3, ratio 0.1, 9 neighbours)."""

    epochs: int = field(default=0, metadata={"help": "unused: PatchCore has no training"})
    levels: str = field(
        default="-2,-1",
        metadata={"help": "harness levels fed as anomalib's layers (anomalib: layer2,layer3)"},
    )
    coreset_sampling_ratio: float = field(
        default=0.1, metadata={"help": "fraction of patch embeddings kept (KCenterGreedy)"}
    )
    num_neighbors: int = field(
        default=9, metadata={"help": "support size of the image-score re-weighting (1 = max)"}
    )


@register_model("anomalib.patchcore")
class AnomalibPatchcore(MemoryBankModel):
    """Reference PatchCore: anomalib's embedding, coreset, search and map; nfbench's features."""

    config_class = AnomalibPatchcoreConfig
    kind = "reference"
    paper = "anomalib's PatchCore on nfbench features"

    def __init__(self, config: AnomalibPatchcoreConfig, features: FeatureInfo) -> None:
        super().__init__(config, features)
        torch_model = anomalib_module("patchcore")
        self.level_ids = parse_levels(config.levels, len(features.channels))
        layers = [f"level{i}" for i in self.level_ids]
        net = torch_model.PatchcoreModel(
            layers=["layer1"], backbone="resnet18", pre_trained=False,
            num_neighbors=config.num_neighbors,
        )
        net.feature_extractor = FeatureFeeder(keys=layers)
        net.layers = layers
        self.net = net
        # anomalib's sampler draws from torch's and numpy's global RNGs; they are seeded from
        # the fit seed for each fit, and restored afterwards (drawn after the net's own draws)
        self.draw_seed()

    def _run(self, features: list[torch.Tensor], training: bool):
        size = self.features.input_size
        chosen = [features[i] for i in self.level_ids]
        # anomalib's forward reads only the dtype, device and size of its "images" argument
        placeholder = chosen[0].new_empty(chosen[0].shape[0], 0, size, size)
        with net_mode(self.net, training), self.net.feature_extractor.feed(chosen):
            return self.net(placeholder)

    @torch.no_grad()
    def finish_task(self, features: list[torch.Tensor], class_ids: torch.Tensor) -> None:
        """anomalib's training epoch (embeddings stored by forward) and its fit()
        (`subsample_embedding`); the bank is rebuilt from what the learner holds."""
        self.net.embedding_store.clear()
        for feats, _ in self.iter_batches(features, None):
            self._run(feats, training=True)
        bank = self.net.memory_bank
        devices = [bank.device.index or 0] if bank.device.type == "cuda" else []
        numpy_state = np.random.get_state()
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.fit_seed)
                np.random.seed(self.fit_seed % 2**32)
                with warnings.catch_warnings():  # its decorator warns of an argument not given
                    warnings.filterwarnings("ignore", "Argument embeddings is deprecated")
                    self.net.subsample_embedding(self.config.coreset_sampling_ratio)
        finally:
            np.random.set_state(numpy_state)

    @torch.no_grad()
    def score(self, features: list[torch.Tensor], class_ids: torch.Tensor | None) -> AnomalyOutput:
        return as_output(self._run(list(features), training=False))
