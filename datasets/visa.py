"""Reader for VisA as distributed: `split_csv/1cls.csv` lists every image of every class.

    object,split,label,image,mask
    candle,train,normal,candle/Data/Images/Normal/0000.JPG,
    candle,test,anomaly,candle/Data/Images/Anomaly/000.JPG,candle/Data/Masks/Anomaly/000.png

Paths are relative to the root. A VisA tree already converted to the MVTec layout (as
anomalib does) is read by the MVTec reader instead.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nfbench.datasets.base import ClassData, Dataset, DatasetError, Sample, select_classes
from nfbench.datasets.mvtec import is_grayscale_file, mvtec_class_dirs, read_mvtec_layout

SPLIT_CSV = Path("split_csv") / "1cls.csv"
COLUMNS = ("object", "split", "label", "image", "mask")


def read_split_csv(csv_path: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise DatasetError(f"unreadable split file: {csv_path} ({err.__class__.__name__})") from err
    table.columns = [c.strip().lower() for c in table.columns]
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise DatasetError(f"split file {csv_path} lacks column(s) {', '.join(missing)}")
    for c in COLUMNS:
        table[c] = table[c].str.strip()
    bad = sorted(set(table["label"]) - {"normal", "anomaly"})
    if bad:
        raise DatasetError(f"split file {csv_path} has unknown label '{bad[0]}' (normal/anomaly)")
    return table


def _sample(root: Path, name: str, label: str, image: str, mask: str,
            csv_path: Path) -> Sample:
    """One listed image (it must exist); an anomalous image's missing mask is None."""
    path = root / image
    if not path.is_file():
        raise DatasetError(f"image listed in {csv_path} not found: {path}")
    if label == "normal":
        return Sample(path, name, 0)
    mask_path = root / mask if mask else None
    if mask_path is not None and not mask_path.is_file():
        mask_path = None
    return Sample(path, name, 1, mask_path=mask_path, defect_type="anomaly")


def _class_from_rows(root: Path, name: str, rows: pd.DataFrame, csv_path: Path) -> ClassData:
    """One class from its CSV rows; listed images must exist, missing masks are noted.
    1cls.csv trains on normal images only."""
    train: list[Sample] = []
    test: list[Sample] = []
    for split, label, image, mask in rows[["split", "label", "image", "mask"]].itertuples(
        index=False
    ):
        if split == "train" and label == "normal":
            train.append(_sample(root, name, label, image, mask, csv_path))
        elif split == "test":
            test.append(_sample(root, name, label, image, mask, csv_path))
    missing = sum(1 for s in test if s.label == 1 and s.mask_path is None)
    notes = ([f"{missing} anomalous images of '{name}' have no mask; pixel metrics skip them"]
             if missing else [])
    if not train:
        raise DatasetError(f"class '{name}' has no training images in {csv_path}")
    if not test:
        raise DatasetError(f"class '{name}' has no test images in {csv_path}")
    return ClassData(name, train, test, grayscale=is_grayscale_file(train[0].path), notes=notes)


def read_visa(root: Path, classes: list[str] | None = None) -> Dataset:
    """Read VisA from its split CSV, or from an MVTec-layout conversion of it."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"data root not found: {root}")
    csv_path = root / SPLIT_CSV
    if not csv_path.is_file():
        if mvtec_class_dirs(root):
            return read_mvtec_layout(root, name="visa", classes=classes)
        raise DatasetError(
            f"no {SPLIT_CSV} and no MVTec-layout class folders in {root} (is this VisA?)"
        )
    table = read_split_csv(csv_path)
    found = sorted(set(table["object"]) - {""})
    if not found:
        raise DatasetError(f"no classes found in {csv_path}")
    wanted = select_classes(found, classes, csv_path)
    return Dataset(
        "visa",
        root,
        {c: _class_from_rows(root, c, table[table["object"] == c], csv_path) for c in wanted},
    )
