"""FastFlow (Yu et al., 2021): 2D normalizing flows over backbone feature maps."""

from nfbench.models.fastflow.model import FastFlow, FastFlowConfig

__all__ = ["FastFlow", "FastFlowConfig"]
