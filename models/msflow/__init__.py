"""MSFlow (Zhou et al., TNNLS 2024): asymmetric parallel flows per scale and a fusion flow."""

from nfbench.models.msflow.model import MSFlow, MSFlowConfig

__all__ = ["MSFlow", "MSFlowConfig"]
