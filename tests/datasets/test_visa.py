"""The VisA reader on a tiny fake split_csv tree (masks stored 0/1, as VisA ships them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nfbench.datasets.base import DatasetError, load_mask
from nfbench.datasets.visa import read_visa

HEADER = "object,split,label,image,mask\n"


def _jpg(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), (90, 120, 60)).save(path, format="JPEG")
    return path.as_posix()


def _mask01(path: Path) -> None:
    arr = np.zeros((16, 16), np.uint8)
    arr[2:6, 2:6] = 1  # VisA masks are 0 / label index, not 0 / 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "visa"
    rows = []
    for obj in ("pcb1", "candle"):
        d = root / obj / "Data"
        for i in range(2):
            _jpg(d / "Images" / "Normal" / f"{i:04d}.JPG")
            rows.append(f"{obj},train,normal,{obj}/Data/Images/Normal/{i:04d}.JPG,")
        _jpg(d / "Images" / "Normal" / "0099.JPG")
        rows.append(f"{obj},test,normal,{obj}/Data/Images/Normal/0099.JPG,")
        _jpg(d / "Images" / "Anomaly" / "000.JPG")
        _mask01(d / "Masks" / "Anomaly" / "000.png")
        rows.append(
            f"{obj},test,anomaly,{obj}/Data/Images/Anomaly/000.JPG,{obj}/Data/Masks/Anomaly/000.png"
        )
    (root / "split_csv").mkdir()
    (root / "split_csv" / "1cls.csv").write_text(HEADER + "\n".join(rows) + "\n")
    return root


def _csv(root: Path) -> Path:
    return root / "split_csv" / "1cls.csv"


def test_reads_split_csv(tree: Path) -> None:
    ds = read_visa(tree)
    assert ds.name == "visa" and ds.class_names == ["candle", "pcb1"]
    pcb = ds["pcb1"]
    assert len(pcb.train) == 2 and all(s.label == 0 for s in pcb.train)
    assert [s.label for s in pcb.test] == [0, 1]
    anomaly = pcb.test[1]
    assert anomaly.defect_type == "anomaly"
    assert anomaly.mask_path == tree / "pcb1" / "Data" / "Masks" / "Anomaly" / "000.png"
    assert load_mask(anomaly, 16).sum() == 16  # 0/1 masks are read as non-zero = anomalous
    assert not pcb.grayscale and pcb.notes == []


def test_class_subset_and_unknown(tree: Path) -> None:
    assert read_visa(tree, classes=["pcb1"]).class_names == ["pcb1"]
    with pytest.raises(DatasetError, match=r"unknown class 'pcb9'.*known: candle, pcb1"):
        read_visa(tree, classes=["pcb9"])


def test_missing_mask_is_noted(tree: Path) -> None:
    (tree / "candle" / "Data" / "Masks" / "Anomaly" / "000.png").unlink()
    candle = read_visa(tree)["candle"]
    assert candle.test[1].mask_path is None
    assert len(candle.notes) == 1 and "no mask" in candle.notes[0]


def test_missing_image_is_an_error(tree: Path) -> None:
    gone = tree / "pcb1" / "Data" / "Images" / "Anomaly" / "000.JPG"
    gone.unlink()
    with pytest.raises(DatasetError, match="not found") as err:
        read_visa(tree)
    assert str(gone) in str(err.value)


def test_bad_csv(tree: Path) -> None:
    _csv(tree).write_text("object,split,image\npcb1,train,x.JPG\n")
    with pytest.raises(DatasetError, match="lacks column") as err:
        read_visa(tree)
    assert str(_csv(tree)) in str(err.value)
    _csv(tree).write_text(HEADER + "pcb1,train,weird,pcb1/Data/Images/Normal/0000.JPG,\n")
    with pytest.raises(DatasetError, match="unknown label 'weird'"):
        read_visa(tree)


def test_class_without_test_images(tree: Path) -> None:
    _csv(tree).write_text(HEADER + "pcb1,train,normal,pcb1/Data/Images/Normal/0000.JPG,\n")
    with pytest.raises(DatasetError, match="no test images"):
        read_visa(tree)


def test_missing_root_and_unrecognised_tree(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        read_visa(tmp_path / "nowhere")
    (tmp_path / "junk").mkdir()
    with pytest.raises(DatasetError, match="1cls.csv") as err:
        read_visa(tmp_path / "junk")
    assert str(tmp_path / "junk") in str(err.value)


def test_mvtec_layout_conversion_is_delegated(tmp_path: Path) -> None:
    root = tmp_path / "visa_mvtec"
    _jpg(root / "pcb1" / "train" / "good" / "000.JPG")
    _jpg(root / "pcb1" / "test" / "good" / "000.JPG")
    _jpg(root / "pcb1" / "test" / "bad" / "000.JPG")
    _mask01(root / "pcb1" / "ground_truth" / "bad" / "000.png")  # anomalib names masks <stem>.png
    ds = read_visa(root)
    assert ds.name == "visa" and ds.class_names == ["pcb1"]
    bad = [s for s in ds["pcb1"].test if s.label == 1]
    assert len(bad) == 1 and bad[0].mask_path == root / "pcb1" / "ground_truth" / "bad" / "000.png"
