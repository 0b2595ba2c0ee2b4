"""U-Flow (Tailanian et al., 2022): a U-shaped multi-scale flow with an a-contrario threshold."""

from nfbench.models.uflow.model import UFlow, UFlowConfig

__all__ = ["UFlow", "UFlowConfig"]
