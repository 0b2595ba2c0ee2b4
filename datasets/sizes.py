"""The published class sizes of MVTec AD and VisA (1cls split): tables only.

`nfbench plan` needs a scenario's counts before anything runs; `catalog.class_sizes` reads
them from a data root when one is given (file listing only), else from these tables or the
synthetic set's spec.
"""

from __future__ import annotations

# per class: (train good, test good, test defective), MVTec AD as published
MVTEC_AD_SPLITS: dict[str, tuple[int, int, int]] = {
    "bottle": (209, 20, 63), "cable": (224, 58, 92), "capsule": (219, 23, 109),
    "carpet": (280, 28, 89), "grid": (264, 21, 57), "hazelnut": (391, 40, 70),
    "leather": (245, 32, 92), "metal_nut": (220, 22, 93), "pill": (267, 26, 141),
    "screw": (320, 41, 119), "tile": (230, 33, 84), "toothbrush": (60, 12, 30),
    "transistor": (213, 60, 40), "wood": (247, 19, 60), "zipper": (240, 32, 119),
}  # fmt: skip
# (normal training images, test images) per class
MVTEC_AD: dict[str, tuple[int, int]] = {
    c: (train, good + bad) for c, (train, good, bad) in MVTEC_AD_SPLITS.items()}
VISA_1CLS: dict[str, tuple[int, int]] = {
    "candle": (900, 200), "capsules": (542, 160), "cashew": (450, 150),
    "chewinggum": (453, 150), "fryum": (450, 150), "macaroni1": (900, 200),
    "macaroni2": (900, 200), "pcb1": (904, 200), "pcb2": (901, 200), "pcb3": (905, 201),
    "pcb4": (904, 201), "pipe_fryum": (450, 150),
}
