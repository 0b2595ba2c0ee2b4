"""CFLOW-AD (Gudovskiy et al., WACV 2022): positionally conditioned flows over feature vectors."""

from nfbench.models.cflow.model import Cflow, CflowConfig

__all__ = ["Cflow", "CflowConfig"]
