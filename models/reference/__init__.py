"""anomalib reference entries: `anomalib.cflow`, `anomalib.fastflow`, `anomalib.csflow`,
`anomalib.uflow`, `anomalib.patchcore`. Importing this package registers them; anomalib itself
is imported only when one is built (see README.md for what each does about the backbone)."""

from nfbench.models.reference.cflow import AnomalibCflow
from nfbench.models.reference.csflow import AnomalibCsflow
from nfbench.models.reference.fastflow import AnomalibFastflow
from nfbench.models.reference.patchcore import AnomalibPatchcore
from nfbench.models.reference.uflow import AnomalibUflow

__all__ = [
    "AnomalibCflow", "AnomalibCsflow", "AnomalibFastflow", "AnomalibPatchcore", "AnomalibUflow",
]
