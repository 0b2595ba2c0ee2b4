"""`nfbench data` as a user runs it: counts for a good tree, exit 2 naming a bad file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PIL import Image


def _data(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """The command in a fresh process; the timeout is the 'finishes in seconds' guard."""
    return subprocess.run(
        [sys.executable, "-m", "nfbench.benchmarks.commands.cli", "data", "--cache-dir",
         str(tmp_path / "cache"), *args],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )


def _row(stdout: str, name: str) -> list[str]:
    """The cells of a class's row in the markdown table."""
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == name:
            return cells
    raise AssertionError(f"no row for {name} in:\n{stdout}")


def test_a_good_tree_prints_counts_and_exits_0(tmp_path: Path, tiny_data: Path) -> None:
    result = _data(tmp_path, "--data-root", str(tiny_data))
    assert result.returncode == 0, result.stderr
    for name in ("alpha", "beta"):  # train normal, test normal, anomalous, with mask, mode, size
        assert _row(result.stdout, name) == [name, "6", "3", "3", "3", "RGB", "64x64"]
    assert "masks: 6 of 6 anomalous test images have one" in result.stdout
    assert "no problems found" in result.stdout


def test_scenario_picks_the_dataset_and_the_classes(tmp_path: Path, tiny_data: Path) -> None:
    (tiny_data / "beta" / "ground_truth" / "spot" / "002_mask.png").unlink()
    result = _data(tmp_path, "--data-root", str(tiny_data), "--scenario", "mvtec:2x1",
                   "--tasks", "beta")
    assert result.returncode == 0, result.stderr  # a missing mask is a note, not a problem
    assert result.stdout.startswith("# mvtec at ")
    assert _row(result.stdout, "beta")[1:5] == ["6", "3", "3", "2"]
    assert "alpha" not in result.stdout
    assert "1 of 3 'spot' images have no mask" in result.stdout


def test_a_truncated_image_exits_2_naming_the_file(tmp_path: Path, tiny_data: Path) -> None:
    bad = tiny_data / "beta" / "test" / "spot" / "001.png"
    bad.write_bytes(bad.read_bytes()[:200])
    mask = tiny_data / "alpha" / "ground_truth" / "spot" / "000_mask.png"
    Image.new("L", (32, 32)).save(mask)
    result = _data(tmp_path, "--data-root", str(tiny_data))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "## Problems (2)" in result.stdout  # every problem is listed, not only the first
    assert f"unreadable image: {bad}" in result.stdout
    assert f"differs from image size (64, 64): {mask}" in result.stdout
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("nfbench: error: 2 problem(s)")
    assert _row(result.stdout, "alpha")[1:5] == ["6", "3", "3", "3"]  # counts still shown


def test_an_empty_class_is_listed_with_the_others(tmp_path: Path, tiny_data: Path) -> None:
    for image in (tiny_data / "alpha" / "train" / "good").iterdir():
        image.unlink()
    result = _data(tmp_path, "--data-root", str(tiny_data))
    assert result.returncode == 2
    assert "class 'alpha' has no training images" in result.stdout
    assert _row(result.stdout, "alpha")[1] == "-"
    assert _row(result.stdout, "beta")[1:4] == ["6", "3", "3"]


def test_a_missing_root_is_one_line(tmp_path: Path) -> None:
    result = _data(tmp_path, "--data-root", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"nfbench: error: data root not found: {tmp_path / 'nowhere'}"
