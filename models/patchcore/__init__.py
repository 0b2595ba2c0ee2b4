"""PatchCore (Roth et al., CVPR 2022): a coreset memory bank of locally aware patch features,
scored by nearest-neighbour distance. A training-free, non-flow reference ceiling."""

from nfbench.models.patchcore.model import PatchCore, PatchCoreConfig

__all__ = ["PatchCore", "PatchCoreConfig"]
