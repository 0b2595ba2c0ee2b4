"""One entry point from a dataset name (as in "mvtec:15x1") to a Dataset."""

from __future__ import annotations

from pathlib import Path

from nfbench.datasets.base import Dataset, DatasetError
from nfbench.datasets.mvtec import read_mvtec_layout
from nfbench.datasets.sizes import MVTEC_AD, VISA_1CLS
from nfbench.datasets.synthetic import CLASSES, DEFAULT_SPEC, SyntheticSpec, read_synthetic
from nfbench.datasets.synthetic_mvtec import NAME as SYNTHETIC_MVTEC
from nfbench.datasets.synthetic_mvtec import read_synthetic_mvtec
from nfbench.datasets.visa import read_visa

KNOWN_DATASETS: tuple[str, ...] = ("folder", "mvtec", "synthetic", SYNTHETIC_MVTEC, "visa")


def open_dataset(
    name: str,
    root: Path | None,
    cache_dir: Path,
    synthetic_spec: SyntheticSpec | None = None,
) -> Dataset:
    """Open a dataset by name. Real datasets need a root; `synthetic` is generated (once)
    under cache_dir/synthetic and ignores root; so does `synthetic-mvtec` (the MVTec-sized
    scale-test set, synthetic_mvtec.py) under cache_dir/synthetic-mvtec."""
    key = name.strip().lower()
    if key not in KNOWN_DATASETS:
        raise DatasetError(f"unknown dataset '{name}' (known: {', '.join(KNOWN_DATASETS)})")
    if key == "synthetic":
        return read_synthetic(Path(cache_dir) / "synthetic", synthetic_spec or SyntheticSpec())
    if key == SYNTHETIC_MVTEC:
        return read_synthetic_mvtec(Path(cache_dir) / SYNTHETIC_MVTEC)
    if root is None:
        raise DatasetError(f"--data-root is required for {key}")
    root = Path(root)
    if key == "visa":
        return read_visa(root)
    return read_mvtec_layout(root, name=key)


def class_sizes(dataset: str, root: Path | None, cache_dir: Path) -> dict[str, tuple[int, int]]:
    """(train, test) image counts per class, in the dataset's class order."""
    key = dataset.strip().lower()
    if root is not None and Path(root).exists():
        opened = open_dataset(key, root, cache_dir)
        return {c: (len(d.train), len(d.test)) for c, d in opened.classes.items()}
    if key in ("mvtec", "synthetic-mvtec"):  # the MVTec-sized synthetic set has its counts
        return dict(MVTEC_AD)
    if key == "visa":
        return dict(VISA_1CLS)
    if key == "synthetic":
        spec = DEFAULT_SPEC
        return {c: (spec.n_train, spec.n_test_good + spec.n_test_defect) for c in CLASSES}
    raise DatasetError(f"no known class sizes for '{dataset}' without --data-root")
