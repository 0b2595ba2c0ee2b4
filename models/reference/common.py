"""Shared plumbing for the anomalib reference entries (no anomalib import at module level)."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import torch
from torch import nn

from nfbench.models.base import AnomalyOutput, FlowADModel, LossTerms, TrainProgress


class AnomalibMissingError(ImportError):
    """anomalib is not installed: the `anomalib.*` entries need the `reference` extra."""


def anomalib_module(model: str, part: str = "torch_model") -> ModuleType:
    """Import `anomalib.models.image.<model>.<part>` on demand (the only anomalib import)."""
    name = f"anomalib.models.image.{model}.{part}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return importlib.import_module(name)
    except ImportError as err:
        raise AnomalibMissingError(
            f"reference model needs anomalib ({name}): pip install 'nfbench[reference]'"
        ) from err


class FeatureFeeder(nn.Module):
    """Stands in for an anomalib feature extractor: returns the nfbench features it is given.

    anomalib's forward() calls `self.feature_extractor(images)`; with this module in its place
    the "images" argument *is* the list of backbone features. For models whose forward needs a
    real image-shaped tensor (CFLOW reads its device and size), the features are staged with
    `feed()` and the call's argument is ignored.
    """

    def __init__(self, keys: list[str] | None = None) -> None:
        super().__init__()
        self.keys = keys
        self._staged: list[torch.Tensor] | None = None

    @contextmanager
    def feed(self, features: list[torch.Tensor]) -> Iterator[None]:
        self._staged = features
        try:
            yield
        finally:
            self._staged = None

    def forward(self, inputs: object) -> list[torch.Tensor] | dict[str, torch.Tensor]:
        feats = self._staged if self._staged is not None else inputs
        if not isinstance(feats, list | tuple):
            raise TypeError("FeatureFeeder expects the list of backbone features")
        if self.keys is None:
            return list(feats)
        return dict(zip(self.keys, feats, strict=True))


@contextmanager
def net_mode(net: nn.Module, training: bool) -> Iterator[nn.Module]:
    """Run anomalib's forward in train (latents) or eval (anomaly map) mode, then restore."""
    was = net.training
    net.train(training)
    try:
        yield net
    finally:
        net.train(was)


def new_uninitialised(cls: type[nn.Module]) -> nn.Module:
    """An instance of an anomalib nn.Module whose own __init__ would download weights.

    Only nn.Module's bookkeeping is set up; the caller assigns the attributes the skipped
    constructor would have set (with anomalib's own builders for every flow part).
    """
    obj = cls.__new__(cls)
    nn.Module.__init__(obj)
    return obj


def as_output(batch: object) -> AnomalyOutput:
    """anomalib's InferenceBatch -> AnomalyOutput; maps come as (B, 1, H, W) or (B, H, W)."""
    maps = batch.anomaly_map
    maps = maps[:, 0] if maps.dim() == 4 else maps
    return AnomalyOutput(maps=maps, image_scores=batch.pred_score.reshape(maps.shape[0]))


class AnomalibNetEntry(FlowADModel):
    """An entry whose anomalib torch model returns (latents, log-jacobians) in training mode
    and an inference batch in eval mode; subclasses set `self.net` and `self.criterion`."""

    net: nn.Module
    criterion: nn.Module

    def training_loss(
        self, features: list[torch.Tensor], class_ids: torch.Tensor, progress: TrainProgress
    ) -> LossTerms:
        with net_mode(self.net, True):
            latents, log_jacs = self.net(list(features))
        loss = self.criterion(latents, log_jacs)
        return LossTerms(loss, {"nll": float(loss.detach())})

    @torch.no_grad()
    def score(self, features: list[torch.Tensor], class_ids: torch.Tensor | None) -> AnomalyOutput:
        with net_mode(self.net, False):
            out = self.net(list(features))
        return as_output(out)
