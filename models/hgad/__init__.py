"""HGAD (Yao et al., ECCV 2024): normalizing flows with a hierarchical Gaussian mixture prior."""

from nfbench.models.hgad.model import HGAD, HGADConfig

__all__ = ["HGAD", "HGADConfig"]
