"""How many images each class has, without reading (or generating) the images.

`nfbench plan` needs the counts of a scenario's classes before anything runs: from the data
root when one is given (file listing only), else from the published sizes of MVTec AD and
VisA (1cls split), or from the synthetic set's spec.
"""

from __future__ import annotations

from pathlib import Path

from nfbench.datasets.base import DatasetError

# (normal training images, test images) per class
MVTEC_AD: dict[str, tuple[int, int]] = {
    "bottle": (209, 83), "cable": (224, 150), "capsule": (219, 132), "carpet": (280, 117),
    "grid": (264, 78), "hazelnut": (391, 110), "leather": (245, 124), "metal_nut": (220, 115),
    "pill": (267, 167), "screw": (320, 160), "tile": (230, 117), "toothbrush": (60, 42),
    "transistor": (213, 100), "wood": (247, 79), "zipper": (240, 151),
}
VISA_1CLS: dict[str, tuple[int, int]] = {
    "candle": (900, 200), "capsules": (542, 160), "cashew": (450, 150),
    "chewinggum": (453, 150), "fryum": (450, 150), "macaroni1": (900, 200),
    "macaroni2": (900, 200), "pcb1": (904, 200), "pcb2": (901, 200), "pcb3": (905, 201),
    "pcb4": (904, 201), "pipe_fryum": (450, 150),
}


def class_sizes(dataset: str, root: Path | None, cache_dir: Path) -> dict[str, tuple[int, int]]:
    """(train, test) image counts per class, in the dataset's class order."""
    key = dataset.strip().lower()
    if root is not None and Path(root).exists():
        from nfbench.datasets.catalog import open_dataset

        opened = open_dataset(key, root, cache_dir)
        return {c: (len(d.train), len(d.test)) for c, d in opened.classes.items()}
    if key == "mvtec":
        return dict(MVTEC_AD)
    if key == "visa":
        return dict(VISA_1CLS)
    if key == "synthetic":
        from nfbench.datasets.synthetic import CLASSES, DEFAULT_SPEC

        spec = DEFAULT_SPEC
        return {c: (spec.n_train, spec.n_test_good + spec.n_test_defect) for c in CLASSES}
    raise DatasetError(f"no known class sizes for '{dataset}' without --data-root")
