"""IsoFlow: a frozen base flow plus per-task low-rank adapters, in the manner of DeCoFlow."""

from nfbench.models.isoflow.model import IsoFlow, IsoFlowConfig

__all__ = ["IsoFlow", "IsoFlowConfig"]
