"""CCNF (seed 001 §3.3-3.5): class-conditional normalizing flow with a growing embedding table."""

from nfbench.models.ccnf.model import CCNF, CCNFConfig

__all__ = ["CCNF", "CCNFConfig"]
