"""CS-Flow (Rudolph et al., WACV 2022): a fully convolutional cross-scale flow."""

from nfbench.models.csflow.model import CsFlow, CsFlowConfig

__all__ = ["CsFlow", "CsFlowConfig"]
